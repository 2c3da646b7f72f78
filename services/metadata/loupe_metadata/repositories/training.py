"""What a trainer reads and writes while an iteration trains: its frozen training set, its
progress, and its end (Completed or Failed). These calls carry no account: the trainer holds
only the iteration id its job names."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import json_format
from psycopg.types.json import Jsonb

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest
from loupe_metadata import rules
from loupe_metadata.db import Repository
from loupe_metadata.repositories.lookups import iteration_row, not_found_iteration
from loupe_metadata.repositories.rows import ITERATION_COLUMNS, iteration_pb, tag_pb
from loupe_metadata.rules import COMPLETED, FAILED, TRAINING, parse_uuid


@dataclass(frozen=True)
class TrainingSet:
    iteration: pb.Iteration
    tags: list[pb.Tag]
    images: list[pb.TrainingImage]


class TrainingRepository(Repository):
    """The trainer's side of an iteration."""

    def get_training_set(self, iteration_id: str) -> TrainingSet:
        """The images and tags an iteration trains on, as frozen by create_iteration.

        Tags' image_count is their count in the training set.
        """
        with self._db.transaction() as cur:
            row = cur.execute(
                f"SELECT {ITERATION_COLUMNS} FROM iterations it WHERE it.id = %s",
                (parse_uuid(iteration_id),),
            ).fetchone()
            if row is None:
                raise not_found_iteration(iteration_id)
            tags = [
                tag_pb({**r, "project_id": row["project_id"]})
                for r in cur.execute(
                    "SELECT tag_id AS id, name, type, image_count FROM iteration_tags"
                    " WHERE iteration_id = %s ORDER BY name, tag_id",
                    (row["id"],),
                )
            ]
            images = [
                pb.TrainingImage(
                    image_id=str(r["image_id"]),
                    sha256=r["sha256"],
                    tag_ids=[str(t) for t in r["tag_ids"]],
                )
                for r in cur.execute(
                    "SELECT image_id, sha256, tag_ids FROM iteration_images"
                    " WHERE iteration_id = %s ORDER BY image_id",
                    (row["id"],),
                )
            ]
        return TrainingSet(iteration_pb(row), tags, images)

    def report_progress(
        self, iteration_id: str, stage: str, percent: float, eta_seconds: float = 0.0
    ) -> None:
        """Records progress of a Training iteration; a late report after the end is ignored.

        Raises:
            NotFound: the iteration was deleted (a trainer takes this as its cancellation).
        """
        percent = min(100.0, max(0.0, float(percent)))
        eta = max(0.0, float(eta_seconds)) if eta_seconds == eta_seconds else 0.0  # NaN -> 0
        with self._db.transaction() as cur:
            updated = cur.execute(
                "UPDATE iterations SET progress_stage = %s, progress_percent = %s,"
                " progress_eta_seconds = %s,"
                " last_modified = now() WHERE id = %s AND status = 'Training'",
                (stage or "", percent, min(eta, 1e9), parse_uuid(iteration_id)),
            ).rowcount
            if not updated and not cur.execute(
                "SELECT 1 FROM iterations WHERE id = %s", (parse_uuid(iteration_id),)
            ).fetchone():
                raise not_found_iteration(iteration_id)

    def start_training_attempt(self, iteration_id: str) -> int:
        """Counts one more start of a Training iteration's job and returns the count.

        The count lives in the database, not in the trainer or in Kafka, so a start whose
        trainer was SIGKILLed (out of memory, say) is still counted when the job is redelivered.
        A started job was plainly sent: its outbox row is marked so, whoever produced it.

        Returns:
            the starts so far, this one included; 0 when the iteration is no longer Training.
        Raises:
            NotFound: the iteration was deleted.
        """
        with self._db.transaction() as cur:
            row = cur.execute(
                "UPDATE iterations SET training_attempts = training_attempts + 1"
                " WHERE id = %s AND status = 'Training' RETURNING training_attempts",
                (parse_uuid(iteration_id),),
            ).fetchone()
            if row is not None:
                cur.execute(
                    "UPDATE training_job_outbox SET sent = now()"
                    " WHERE iteration_id = %s AND sent IS NULL",
                    (parse_uuid(iteration_id),),
                )
                return int(row["training_attempts"])
            if not cur.execute("SELECT 1 FROM iterations WHERE id = %s", (parse_uuid(iteration_id),)).fetchone():
                raise not_found_iteration(iteration_id)
            return 0

    def finish_iteration(
        self,
        iteration_id: str,
        status: str,
        artifact_key: str = "",
        error_message: str = "",
        evaluation: bytes = b"",
        performance: pb.Performance | None = None,
        training_seconds: float = 0.0,
        evaluation_image_ids: Sequence[str] = (),
    ) -> tuple[pb.Iteration, bool]:
        """Ends a Training iteration as Completed or Failed.

        Idempotent (a redelivered training job finishes twice): an iteration that is no longer
        Training is left as it is.

        Returns:
            (the iteration, already_finished).
        """
        if status not in (COMPLETED, FAILED):
            raise BadRequest(f"status must be Completed or Failed, not {status!r}", "BadRequest")
        if status == COMPLETED and not artifact_key:
            raise BadRequest("a Completed iteration needs its artifact key", "BadRequest")
        eval_ids = rules.parse_uuids(evaluation_image_ids)
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT project_id, status FROM iterations WHERE id = %s FOR UPDATE",
                (parse_uuid(iteration_id),),
            ).fetchone()
            if row is None:
                raise not_found_iteration(iteration_id)
            if row["status"] != TRAINING:
                return iteration_pb(iteration_row(cur, row["project_id"], iteration_id)), True
            completed = status == COMPLETED
            perf = (
                Jsonb(json_format.MessageToDict(performance, preserving_proto_field_name=True))
                if performance is not None and performance.ByteSize()
                else None
            )
            cur.execute(
                "UPDATE iterations SET status = %(status)s, last_modified = now(),"
                " trained_at = CASE WHEN %(completed)s THEN now() END,"
                " training_time_in_minutes = %(minutes)s, artifact_key = %(artifact)s,"
                " error_message = %(error)s, evaluation = %(evaluation)s,"
                " performance = %(performance)s, progress_stage = %(status)s,"
                " evaluation_image_ids = %(eval_ids)s,"
                " progress_eta_seconds = 0,"
                " progress_percent = CASE WHEN %(completed)s THEN 100 ELSE progress_percent END"
                " WHERE id = %(id)s",
                {
                    "status": status,
                    "completed": completed,
                    "minutes": rules.minutes(training_seconds),
                    "artifact": artifact_key or "",
                    "error": "" if completed else (error_message or "training failed"),
                    "evaluation": evaluation or None,
                    "performance": perf,
                    "eval_ids": eval_ids if eval_ids else None,
                    "id": parse_uuid(iteration_id),
                },
            )
            # A finished iteration's job is never produced again (a late copy would be skipped).
            cur.execute(
                "DELETE FROM training_job_outbox WHERE iteration_id = %s", (parse_uuid(iteration_id),)
            )
            return iteration_pb(iteration_row(cur, row["project_id"], iteration_id)), False
