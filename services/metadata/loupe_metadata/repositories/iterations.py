"""Iterations as a user sees them: started with their training set frozen, read, renamed,
published under a name, deleted. What the trainer calls while an iteration runs is in
training.py."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest, Conflict, NotFound
from loupe_metadata import rules
from loupe_metadata.db import Cursor, Repository
from loupe_metadata.repositories.lookups import (
    iteration_row,
    not_found_tag,
    project_row,
    project_tags,
)
from loupe_metadata.repositories.rows import ITERATION_COLUMNS, iteration_pb
from loupe_metadata.rules import COMPLETED


class IterationRepository(Repository):
    """A project's iterations, from CreateIteration to DeleteIteration."""

    def existing_iterations(self, project_id: str, iteration_ids: Sequence[str]) -> list[str]:
        """Which of `iteration_ids` are iterations of the project, in any account (the orphan
        sweep: no account scope). Ids that are not UUIDs exist nowhere."""
        project = rules.parse_uuid(project_id)
        wanted = [u for u in (rules.parse_uuid(i) for i in iteration_ids) if u is not None]
        if project is None or not wanted:
            return []
        with self._db.transaction() as cur:
            rows = cur.execute("SELECT id FROM iterations WHERE project_id = %s AND id = ANY(%s)",
                               (project, wanted)).fetchall()
        return sorted(str(r["id"]) for r in rows)

    def create_iteration(
        self,
        account_id: str,
        project_id: str,
        training_type: str = "",
        reserved_budget_in_hours: float = 0.0,
        force_train: bool = False,
        selected_tag_ids: Sequence[str] = (),
        min_images_per_tag: int = 0,
        job_topic: str = "",
    ) -> pb.Iteration:
        """Starts an iteration (status Training) with its training set frozen, and with
        `job_topic` its training job's row in the hand-off outbox (repositories/handoff.py), in
        the same transaction: no crash after the commit leaves an iteration without its job.

        Refuses with BadRequestTrainingAlreadyInProgress while another iteration trains,
        BadRequestTrainingValidationFailed when the tags lack images, and
        BadRequestTrainingNotNeeded when nothing changed since the last Completed iteration
        (unless `force_train`).
        """
        training = rules.training_type(training_type)
        if reserved_budget_in_hours < 0:
            raise BadRequest("reserved budget must not be negative", "BadRequest")
        selected = rules.parse_uuids(selected_tag_ids)
        try:
            with self._db.transaction() as cur:
                # The row lock serialises CreateIteration per project (check, then insert).
                project = project_row(cur, account_id, project_id, lock=True)
                pid = project["id"]
                if cur.execute(
                    "SELECT 1 FROM iterations WHERE project_id = %s AND status = 'Training'",
                    (pid,),
                ).fetchone():
                    raise Conflict(
                        "a training is already in progress", "BadRequestTrainingAlreadyInProgress"
                    )
                tags = {
                    r["id"]: r
                    for r in cur.execute(
                        "SELECT id, name, type FROM tags WHERE project_id = %s ORDER BY created, id",
                        (pid,),
                    )
                }
                if selected:
                    unknown = set(selected) - tags.keys()
                    if unknown:
                        raise not_found_tag(", ".join(sorted(map(str, unknown))))
                    tags = {t: tags[t] for t in tags if t in set(selected)}
                links = cur.execute(
                    "SELECT i.id, i.sha256, array_agg(x.tag_id ORDER BY x.tag_id) AS tag_ids"
                    " FROM images i JOIN image_tags x ON x.image_id = i.id"
                    " WHERE i.project_id = %s AND x.tag_id = ANY(%s)"
                    " GROUP BY i.id, i.sha256 ORDER BY i.created, i.id",
                    (pid, list(tags)),
                ).fetchall()
                counts = {t: 0 for t in tags}
                for link in links:
                    for t in link["tag_ids"]:
                        counts[t] += 1
                tag_counts = [
                    rules.TagCount(str(t), r["name"], r["type"], counts[t]) for t, r in tags.items()
                ]
                rules.check_training_set(
                    tag_counts, project["classification_type"], min_images_per_tag
                )
                fingerprint = rules.training_fingerprint(
                    ((link["sha256"], link["tag_ids"]) for link in links),
                    training,
                    project["classification_type"],
                    project["domain_id"],
                )
                last = cur.execute(
                    "SELECT training_fingerprint FROM iterations"
                    " WHERE project_id = %s AND status = 'Completed'"
                    " ORDER BY created DESC, id DESC LIMIT 1",
                    (pid,),
                ).fetchone()
                if not force_train and last and last["training_fingerprint"] == fingerprint:
                    raise Conflict(
                        "Nothing changed since the last iteration", "BadRequestTrainingNotNeeded"
                    )
                seq = cur.execute(
                    "UPDATE projects SET iteration_seq = iteration_seq + 1 WHERE id = %s"
                    " RETURNING iteration_seq",
                    (pid,),
                ).fetchone()["iteration_seq"]
                iteration_id = uuid.uuid4()
                cur.execute(
                    "INSERT INTO iterations (id, project_id, name, status, domain_id,"
                    " classification_type, training_type, reserved_budget_in_hours,"
                    " progress_stage, training_fingerprint)"
                    " VALUES (%s, %s, %s, 'Training', %s, %s, %s, %s, 'queued', %s)",
                    (
                        iteration_id,
                        pid,
                        f"Iteration {seq}",
                        project["domain_id"],
                        project["classification_type"],
                        training,
                        reserved_budget_in_hours,
                        fingerprint,
                    ),
                )
                cur.executemany(
                    "INSERT INTO iteration_tags (iteration_id, tag_id, name, type, image_count)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(iteration_id, t, r["name"], r["type"], counts[t]) for t, r in tags.items()],
                )
                with cur.copy(
                    "COPY iteration_images (iteration_id, image_id, sha256, tag_ids) FROM STDIN"
                ) as copy:
                    for link in links:
                        copy.write_row((iteration_id, link["id"], link["sha256"], link["tag_ids"]))
                if job_topic:
                    cur.execute(
                        "INSERT INTO training_job_outbox (iteration_id, topic) VALUES (%s, %s)",
                        (iteration_id, job_topic),
                    )
                row = iteration_row(cur, pid, str(iteration_id))
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == "iterations_one_training_uq":
                raise Conflict(
                    "a training is already in progress", "BadRequestTrainingAlreadyInProgress"
                ) from None
            raise
        return iteration_pb(row)

    def get_iteration(self, account_id: str, project_id: str, iteration_id: str) -> pb.Iteration:
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = iteration_row(cur, project["id"], iteration_id)
            if row["evaluation"] is not None and row["evaluation_image_ids"] is None:
                row = {**row, "evaluation_image_ids": self._training_order(cur, row["id"])}
            return iteration_pb(row)

    @staticmethod
    def _training_order(cur: Cursor, iteration_id: Any) -> list[Any]:
        """The image order a trainer evaluates in when it does not report it: the training set
        as GetTrainingSet lists it (by image id), keeping images with a tag of the iteration."""
        return [
            r["image_id"]
            for r in cur.execute(
                "SELECT ii.image_id FROM iteration_images ii WHERE ii.iteration_id = %(it)s"
                " AND ii.tag_ids && ARRAY(SELECT tag_id FROM iteration_tags"
                " WHERE iteration_id = %(it)s) ORDER BY ii.image_id",
                {"it": iteration_id},
            )
        ]

    def list_iterations(self, account_id: str, project_id: str) -> list[pb.Iteration]:
        """A project's iterations, newest first (without `evaluation`, which can be large)."""
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            rows = cur.execute(
                f"SELECT {ITERATION_COLUMNS} FROM iterations it WHERE it.project_id = %s"
                " ORDER BY it.created DESC, it.id DESC",
                (project["id"],),
            ).fetchall()
        return [iteration_pb(r) for r in rows]

    def delete_iteration(self, account_id: str, project_id: str, iteration_id: str) -> str:
        """Deletes an unpublished iteration; returns its artifact key ("" when none)."""
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = iteration_row(cur, project["id"], iteration_id, lock=True)
            if row["publish_name"] is not None:
                raise Conflict(
                    f"{row['name']} is published as {row['publish_name']!r}; unpublish it first",
                    "BadRequestIterationIsPublished",
                )
            cur.execute("DELETE FROM iterations WHERE id = %s", (row["id"],))
        return row["artifact_key"]

    def update_iteration(
        self, account_id: str, project_id: str, iteration_id: str, name: str
    ) -> pb.Iteration:
        """Renames an iteration."""
        name = (name or "").strip()
        if not name:
            raise BadRequest("an iteration needs a name", "BadRequestIterationName")
        if len(name) > rules.MAX_NAME_LENGTH:
            raise BadRequest("the iteration name is too long", "BadRequestIterationName")
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = iteration_row(cur, project["id"], iteration_id, lock=True)
            if cur.execute(
                "SELECT 1 FROM iterations WHERE project_id = %s AND lower(name) = lower(%s)"
                " AND id <> %s",
                (project["id"], name, row["id"]),
            ).fetchone():
                raise Conflict(
                    f"the project already has an iteration named {name!r}",
                    "BadRequestIterationNameNotUnique",
                )
            cur.execute(
                "UPDATE iterations SET name = %s, last_modified = now() WHERE id = %s",
                (name, row["id"]),
            )
            return iteration_pb(
                {**iteration_row(cur, project["id"], iteration_id), "evaluation": None}
            )

    def publish_iteration(
        self,
        account_id: str,
        project_id: str,
        iteration_id: str,
        publish_name: str,
        prediction_resource_id: str = "",
        overwrite: bool = False,
    ) -> pb.Iteration:
        """Publishes a Completed iteration under a name unique in the project.

        With `overwrite`, an iteration that holds the name loses it; otherwise the name being
        taken is BadRequestInvalidPublishName. The prediction resource must be the account's.
        """
        name = rules.publish_name(publish_name)
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id, lock=True)
            resource = cur.execute(
                "SELECT prediction_resource_id FROM accounts WHERE id = %s",
                (project["account_id"],),
            ).fetchone()["prediction_resource_id"]
            if prediction_resource_id and prediction_resource_id != resource:
                raise BadRequest(
                    "unknown prediction resource", "BadRequestInvalidPublishTarget"
                )
            row = iteration_row(cur, project["id"], iteration_id, lock=True)
            if row["status"] != COMPLETED:
                raise Conflict(
                    f"{row['name']} is {row['status']}, only a Completed iteration can be published",
                    "BadRequestIterationIsNotTrained",
                )
            holder = cur.execute(
                "SELECT id, name FROM iterations WHERE project_id = %s AND publish_name = %s"
                " AND id <> %s",
                (project["id"], name, row["id"]),
            ).fetchone()
            if holder is not None:
                if not overwrite:
                    raise Conflict(
                        f"publish name {name!r} is used by {holder['name']}",
                        "BadRequestInvalidPublishName",
                    )
                cur.execute(
                    "UPDATE iterations SET publish_name = NULL, prediction_resource_id = NULL,"
                    " last_modified = now() WHERE id = %s",
                    (holder["id"],),
                )
            cur.execute(
                "UPDATE iterations SET publish_name = %s, prediction_resource_id = %s,"
                " last_modified = now() WHERE id = %s",
                (name, resource, row["id"]),
            )
            return iteration_pb(iteration_row(cur, project["id"], iteration_id))

    def unpublish_iteration(
        self, account_id: str, project_id: str, iteration_id: str
    ) -> pb.Iteration:
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = iteration_row(cur, project["id"], iteration_id, lock=True)
            if row["publish_name"] is None:
                raise Conflict(f"{row['name']} is not published", "BadRequestIterationNotPublished")
            cur.execute(
                "UPDATE iterations SET publish_name = NULL, prediction_resource_id = NULL,"
                " last_modified = now() WHERE id = %s",
                (row["id"],),
            )
            return iteration_pb(iteration_row(cur, project["id"], iteration_id))

    def get_published_iteration(
        self, account_id: str, project_id: str, publish_name: str
    ) -> tuple[pb.Iteration, list[pb.Tag]]:
        """The iteration published under `publish_name` and the project's tags."""
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = cur.execute(
                f"SELECT {ITERATION_COLUMNS} FROM iterations it"
                " WHERE it.project_id = %s AND it.publish_name = %s",
                (project["id"], publish_name),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"no iteration is published as {publish_name!r}", "NotFoundIteration"
                )
            return iteration_pb(row), project_tags(cur, project["id"])
