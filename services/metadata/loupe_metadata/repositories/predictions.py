"""Stored predictions: what the prediction API classified, recorded for the Predictions view."""
from __future__ import annotations

import uuid
from datetime import datetime
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from loupe.v1 import metadata_pb2 as pb
from loupe_common import paging
from loupe_common.errors import BadRequest
from loupe_common.timeutil import from_proto
from loupe_metadata import rules
from loupe_metadata.db import Repository
from loupe_metadata.repositories.lookups import not_found_project, project_row
from loupe_metadata.repositories.rows import prediction_pb
from loupe_metadata.rules import parse_uuid

#: Most stored predictions returned by one ListPredictions.
MAX_PREDICTIONS = 1000


class PredictionRepository(Repository):
    """Records, queries and deletes a project's stored predictions."""

    def stored_prediction_quota(self, account_id: str) -> tuple[int, int]:
        """(the account's stored-prediction quota, its stored predictions counted up to the
        quota): the count reads at most `quota` index entries; no quota, no count."""
        limit = self._db.quotas.stored_predictions_per_account
        account = parse_uuid(account_id)
        if not limit or account is None:
            return limit, 0
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT count(*) AS n FROM (SELECT 1 FROM predictions p"
                " JOIN projects pr ON pr.id = p.project_id WHERE pr.account_id = %s LIMIT %s) t",
                (account, limit),
            ).fetchone()
        return limit, row["n"]

    def record_prediction(self, prediction: pb.StoredPrediction) -> str:
        """Stores a prediction; returns its id. The iteration link is dropped if it is gone."""
        prediction_id = parse_uuid(prediction.id) or uuid.uuid4()
        created = from_proto(prediction.created) if prediction.HasField("created") else None
        results = [
            {"tag_id": p.tag_id, "tag_name": p.tag_name, "probability": p.probability}
            for p in prediction.predictions
        ]
        with self._db.transaction() as cur:
            project = cur.execute(
                "SELECT id FROM projects WHERE id = %s", (parse_uuid(prediction.project_id),)
            ).fetchone()
            if project is None:
                raise not_found_project(prediction.project_id)
            # ON CONFLICT: the recorder consumes Kafka at least once, so a replay is a no-op.
            cur.execute(
                "INSERT INTO predictions (id, project_id, iteration_id, image_sha256, width,"
                " height, application, results, created)"
                " VALUES (%(id)s, %(project)s,"
                " (SELECT id FROM iterations WHERE id = %(iteration)s AND project_id = %(project)s),"
                " %(sha)s, %(width)s, %(height)s, %(application)s, %(results)s,"
                " coalesce(%(created)s, now()))"
                " ON CONFLICT (id) DO NOTHING",
                {
                    "id": prediction_id,
                    "project": project["id"],
                    "iteration": parse_uuid(prediction.iteration_id),
                    "sha": rules.sha256_hex(prediction.image_sha256),
                    "width": prediction.width,
                    "height": prediction.height,
                    "application": prediction.application,
                    "results": Jsonb(results),
                    "created": created,
                },
            )
        return str(prediction_id)

    def list_predictions(
        self, account_id: str, project_id: str, max_count: int = 0
    ) -> list[pb.StoredPrediction]:
        """Stored predictions of a project, newest first (at most max_count, or 1000)."""
        limit = min(max_count, MAX_PREDICTIONS) if max_count > 0 else MAX_PREDICTIONS
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            rows = cur.execute(
                "SELECT * FROM predictions WHERE project_id = %s"
                " ORDER BY created DESC, id DESC LIMIT %s",
                (project["id"], limit),
            ).fetchall()
        return [prediction_pb(r) for r in rows]

    def query_predictions(
        self,
        account_id: str,
        project_id: str,
        tags: Sequence[tuple[str, float, float]] = (),
        iteration_id: str = "",
        start_time: Any = None,
        end_time: Any = None,
        order_by: str = "",
        max_count: int = 0,
        continuation: str = "",
        application: str = "",
        ids: Sequence[str] = (),
    ) -> tuple[list[pb.StoredPrediction], str]:
        """A page of stored predictions and the continuation token of the next page ("" at the
        end).

        Args:
            tags: (tag_id, min, max) filters; a prediction matches when ANY named tag's
                probability lies in [min, max] (max 0 = no upper bound), as the Predictions
                view filters by the tags a user picks.
            iteration_id / application: only predictions of that iteration / application.
            start_time / end_time: datetimes bounding `created` (inclusive).
            order_by: Newest (default), Oldest, or Suspicious (least confident first: the
                lowest top probability).
            max_count: page size (default and most MAX_PREDICTIONS).
            continuation: a token from the previous page of the same query.
            ids: only these predictions.
        """
        order = (order_by or "Newest").lower()
        if order not in ("newest", "oldest", "suspicious"):
            raise BadRequest(
                f"unknown order {order_by!r}", "BadRequestPredictionInvalidQueryParameters"
            )
        limit = min(max_count, MAX_PREDICTIONS) if max_count > 0 else MAX_PREDICTIONS
        skip = 0
        if continuation:
            skip = paging.decode_skip(continuation, "BadRequestPredictionInvalidQueryParameters")
        where = ["p.project_id = %(project)s"]
        params: dict[str, Any] = {"limit": limit + 1, "skip": max(skip, 0)}
        if iteration_id:
            where.append("p.iteration_id = %(iteration)s")
            params["iteration"] = rules.parse_uuids([iteration_id])[0]
        if application:
            where.append("p.application = %(application)s")
            params["application"] = application
        if start_time is not None:
            where.append("p.created >= %(start)s")
            params["start"] = start_time
        if end_time is not None:
            where.append("p.created <= %(end)s")
            params["end"] = end_time
        if ids:
            where.append("p.id = ANY(%(ids)s)")
            params["ids"] = rules.parse_uuids(ids)
        if tags:
            clauses = []
            for n, (tag_id, low, high) in enumerate(tags):
                params[f"t{n}"] = str(rules.parse_uuids([tag_id], "BadRequestImageTags")[0])
                params[f"lo{n}"] = float(low or 0.0)
                params[f"hi{n}"] = float(high) if high else 1.0
                clauses.append(
                    f"(e->>'tag_id' = %(t{n})s AND (e->>'probability')::float8"
                    f" BETWEEN %(lo{n})s AND %(hi{n})s)"
                )
            where.append(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(p.results) e WHERE "
                + " OR ".join(clauses) + ")"
            )
        order_sql = {
            "newest": "p.created DESC, p.id DESC",
            "oldest": "p.created ASC, p.id ASC",
            "suspicious": "(SELECT coalesce(max((e->>'probability')::float8), 0)"
            " FROM jsonb_array_elements(p.results) e) ASC, p.created DESC, p.id DESC",
        }[order]
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            params["project"] = project["id"]
            rows = cur.execute(
                f"SELECT p.* FROM predictions p WHERE {' AND '.join(where)}"
                f" ORDER BY {order_sql} LIMIT %(limit)s OFFSET %(skip)s",
                params,
            ).fetchall()
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = paging.encode_skip(skip + limit)
        return [prediction_pb(r) for r in rows], token

    def delete_predictions(
        self, account_id: str, project_id: str, ids: Sequence[str]
    ) -> list[str]:
        """Deletes stored predictions; unknown ids are ignored.

        Returns:
            Hashes of the deleted predictions' images that nothing else in the project uses
            (no image row, no other prediction, no running training), for storage clean-up.
        """
        parsed = rules.parse_uuids(ids)
        if not parsed:
            raise BadRequest("no prediction ids given", "BadRequestPredictionIdsMissing")
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM predictions WHERE project_id = %s AND id = ANY(%s)"
                " RETURNING image_sha256",
                (project["id"], parsed),
            ).fetchall()
            hashes = sorted({r["image_sha256"] for r in deleted})
            used = _still_used(cur, [(project["id"], h) for h in hashes])
        return [h for h in hashes if (project["id"], h) not in used]

    def referenced_images(self, project_id: str, hashes: Sequence[str]) -> list[str]:
        """Which of a project's image `hashes` a row still references (`_still_used`): the
        orphan sweep removes the bytes of the others."""
        project = parse_uuid(project_id)
        if project is None or not hashes:
            return []
        with self._db.transaction() as cur:
            used = _still_used(cur, [(project, h) for h in dict.fromkeys(hashes)])
        return sorted(h for _, h in used)

    def expire_predictions(self, before: datetime, limit: int) -> tuple[int, list[tuple[str, str]]]:
        """Retention: deletes up to `limit` stored predictions of any project made before
        `before`, oldest first (rows another caller is deleting are skipped, so replicas
        running the same loop do not wait on each other).

        Returns:
            (how many were deleted, (project id, image hash) of the deleted predictions' images
            that nothing else references, for storage clean-up).
        """
        if limit <= 0:
            raise BadRequest("limit must be positive", "BadRequest")
        with self._db.transaction() as cur:
            deleted = cur.execute(
                "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions WHERE created < %s"
                " ORDER BY created LIMIT %s FOR UPDATE SKIP LOCKED)"
                " RETURNING project_id, image_sha256",
                (before, limit),
            ).fetchall()
            pairs = sorted({(r["project_id"], r["image_sha256"]) for r in deleted})
            used = _still_used(cur, pairs)
        return len(deleted), [(str(p), h) for p, h in pairs if (p, h) not in used]


def _still_used(cur, pairs: Sequence[tuple[Any, str]]) -> set[tuple[Any, str]]:
    """The (project, image hash) pairs that a stored prediction, an image row or a running
    training still references: their bytes must stay."""
    if not pairs:
        return set()
    projects, hashes = [p for p, _ in pairs], [h for _, h in pairs]
    rows = cur.execute(
        "WITH wanted AS (SELECT * FROM unnest(%(p)s::uuid[], %(h)s::text[]) AS w(project_id, sha))"
        " SELECT x.project_id, x.image_sha256 AS sha FROM predictions x"
        " JOIN wanted w ON w.project_id = x.project_id AND w.sha = x.image_sha256"
        " UNION SELECT i.project_id, i.sha256 FROM images i"
        " JOIN wanted w ON w.project_id = i.project_id AND w.sha = i.sha256"
        " UNION SELECT it.project_id, ii.sha256 FROM iteration_images ii"
        " JOIN iterations it ON it.id = ii.iteration_id"
        " JOIN wanted w ON w.project_id = it.project_id AND w.sha = ii.sha256"
        " WHERE it.status = 'Training'",
        {"p": projects, "h": hashes},
    ).fetchall()
    return {(r["project_id"], r["sha"]) for r in rows}
