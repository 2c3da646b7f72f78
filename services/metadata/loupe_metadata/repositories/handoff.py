"""The training job's hand-off to Kafka, a transactional outbox: create_iteration writes the
iteration and its `training_job_outbox` row in one transaction; the gateway that created it
produces the job and marks the row sent; the gateway's reconciler (loupe_gateway/reconciler.py)
takes the rows left unsent, produces them again, and fails iterations no trainer ever started.

Every gateway replica runs the reconciler: rows another replica is taking are skipped, and a
row taken is not offered again before the same deadline has passed once more.
"""
from __future__ import annotations

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest
from loupe_common.timeutil import to_proto
from loupe_metadata import rules
from loupe_metadata.db import Repository
from loupe_metadata.rules import parse_uuid


def _check(seconds: float, limit: int) -> None:
    if not seconds >= 0:  # NaN too
        raise BadRequest("the deadline must not be negative", "BadRequest")
    if limit <= 0:
        raise BadRequest("limit must be positive", "BadRequest")


class HandoffRepository(Repository):
    """The outbox of training jobs, and the iterations it leaves stranded."""

    def mark_training_job_sent(self, iteration_id: str) -> None:
        """Records that Kafka acknowledged the iteration's job (a no-op without an unsent row)."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE training_job_outbox SET sent = now() WHERE iteration_id = %s AND sent IS NULL",
                (parse_uuid(iteration_id),),
            )

    def claim_training_jobs(self, unsent_seconds: float, limit: int) -> list[pb.PendingTrainingJob]:
        """Takes up to `limit` jobs of Training iterations still unsent `unsent_seconds` after
        they were written or last taken, oldest first."""
        _check(unsent_seconds, limit)
        with self._db.transaction() as cur:
            rows = cur.execute(
                "WITH due AS (SELECT o.iteration_id FROM training_job_outbox o"
                " JOIN iterations it ON it.id = o.iteration_id"
                " WHERE o.sent IS NULL AND it.status = 'Training'"
                " AND coalesce(o.claimed, o.created) <= now() - make_interval(secs => %(after)s)"
                " ORDER BY o.created LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED)"
                " UPDATE training_job_outbox o SET claimed = now(), resends = o.resends + 1"
                " FROM due, iterations it, projects p"
                " WHERE o.iteration_id = due.iteration_id AND it.id = o.iteration_id"
                " AND p.id = it.project_id"
                " RETURNING o.iteration_id, it.project_id, p.account_id, it.training_type,"
                " it.reserved_budget_in_hours, o.topic, o.created, o.resends",
                {"after": float(unsent_seconds), "limit": limit},
            ).fetchall()
        return [
            pb.PendingTrainingJob(
                iteration_id=str(r["iteration_id"]), project_id=str(r["project_id"]),
                account_id=str(r["account_id"]), training_type=r["training_type"],
                reserved_budget_in_hours=r["reserved_budget_in_hours"], topic=r["topic"],
                created=to_proto(r["created"]), resends=r["resends"],
            )
            for r in sorted(rows, key=lambda r: r["created"])
        ]

    def fail_stale_iterations(self, untouched_seconds: float, limit: int) -> list[str]:
        """Fails up to `limit` Training iterations that no trainer has started (no attempt
        counted) `untouched_seconds` after their job was sent, or after they were created when
        it never was; returns their ids."""
        _check(untouched_seconds, limit)
        with self._db.transaction() as cur:
            rows = cur.execute(
                "WITH stale AS (SELECT it.id FROM iterations it"
                " LEFT JOIN training_job_outbox o ON o.iteration_id = it.id"
                " WHERE it.status = 'Training' AND it.training_attempts = 0"
                " AND coalesce(o.sent, it.created) <= now() - make_interval(secs => %(after)s)"
                " ORDER BY it.created LIMIT %(limit)s FOR UPDATE OF it SKIP LOCKED)"
                " UPDATE iterations it SET status = 'Failed', error_message = %(message)s,"
                " progress_stage = 'Failed', progress_eta_seconds = 0, last_modified = now()"
                " FROM stale WHERE it.id = stale.id RETURNING it.id",
                {"after": float(untouched_seconds), "limit": limit,
                 "message": rules.untouched_message(untouched_seconds)},
            ).fetchall()
            ids = [r["id"] for r in rows]
            if ids:
                cur.execute("DELETE FROM training_job_outbox WHERE iteration_id = ANY(%s)", (ids,))
        return [str(i) for i in ids]
