"""The metadata service's core: every RPC of metadata.proto as a method, over PostgreSQL.

Transport-free: the servicer converts requests to arguments and wraps the results. The
`loupe.v1` messages (Project, Tag, Image, Iteration, ...) serve as the domain types: they are
already the public, versioned data model, and copying them into parallel dataclasses would double
the code without decoupling anything.

Every project-scoped method takes the caller's account id and answers NotFoundProject for a
project of another account, so a key never learns that another account's project exists.
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from google.protobuf import json_format
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import BadRequest, Conflict, NotFound
from loupe_common.timeutil import from_proto, to_proto
from loupe_metadata import rules
from loupe_metadata.rules import COMPLETED, FAILED, TRAINING, parse_uuid

#: Custom Vision's default page size for image lists.
DEFAULT_TAKE = 50
#: Most stored predictions returned by one ListPredictions.
MAX_PREDICTIONS = 1000

_ITERATION_COLUMNS = """
    it.id, it.project_id, it.name, it.status, it.created, it.last_modified, it.trained_at,
    it.domain_id, it.classification_type, it.training_type, it.reserved_budget_in_hours,
    it.training_time_in_minutes, it.publish_name, it.prediction_resource_id, it.artifact_key,
    it.error_message, it.progress_stage, it.progress_percent, it.performance,
    it.progress_eta_seconds
"""
_TAG_COLUMNS = """
    t.id, t.project_id, t.name, t.description, t.type,
    (SELECT count(*) FROM image_tags x WHERE x.tag_id = t.id) AS image_count
"""


@dataclass(frozen=True)
class KeyInfo:
    account_id: str
    kind: str
    prediction_resource_id: str


@dataclass(frozen=True)
class DeletedProject:
    image_sha256: list[str]
    artifact_keys: list[str]


@dataclass(frozen=True)
class ImagePage:
    images: list[pb.Image]
    total: int


@dataclass(frozen=True)
class TrainingSet:
    iteration: pb.Iteration
    tags: list[pb.Tag]
    images: list[pb.TrainingImage]


def _not_found_project(project_id: str) -> NotFound:
    return NotFound(f"project {project_id!r} not found", "NotFoundProject")


def _not_found_iteration(iteration_id: str) -> NotFound:
    return NotFound(f"iteration {iteration_id!r} not found", "NotFoundIteration")


def _not_found_tag(tag_id: str) -> NotFound:
    return NotFound(f"tag {tag_id!r} not found", "NotFoundTag")


#: Bounds on a metadata filter (the gateway's parser keeps well inside them).
MAX_FILTER_COMPARISONS = 100
MAX_FILTER_DEPTH = 32


def _metadata_filter_sql(
    node: pb.MetadataFilter, params: dict[str, Any], depth: int = 0
) -> str:
    """The SQL condition (over `i.metadata`) of a metadata filter.

    Keys and values only ever travel as bound parameters (named mk<n>/mv<n> here, added to
    `params`); the SQL text is built from fixed fragments alone.
    """
    if depth > MAX_FILTER_DEPTH:
        raise BadRequest("the metadata filter is nested too deeply", "BadRequest")
    kind = node.WhichOneof("node")
    if kind == "comparison":
        n = sum(1 for k in params if k.startswith("mk"))
        if n >= MAX_FILTER_COMPARISONS:
            raise BadRequest("the metadata filter has too many comparisons", "BadRequest")
        c = node.comparison
        key, value = f"mk{n}", f"mv{n}"
        params[key], params[value] = c.key, c.value
        if c.op == "eq":
            return f"(i.metadata ->> %({key})s::text) = %({value})s::text"
        if c.op == "ne":
            return f"(i.metadata ->> %({key})s::text) IS DISTINCT FROM %({value})s::text"
        raise BadRequest(f"unsupported metadata filter operator {c.op!r}", "BadRequest")
    if kind in ("all", "any"):
        children = getattr(node, kind).filters
        if not children:
            raise BadRequest("an empty metadata filter group", "BadRequest")
        joiner = " AND " if kind == "all" else " OR "
        return "(" + joiner.join(_metadata_filter_sql(c, params, depth + 1) for c in children) + ")"
    raise BadRequest("an empty metadata filter", "BadRequest")


# --- rows to messages -------------------------------------------------------------------------


def _project_pb(row: dict[str, Any]) -> pb.Project:
    return pb.Project(
        id=str(row["id"]),
        account_id=str(row["account_id"]),
        name=row["name"],
        description=row["description"],
        domain_id=row["domain_id"],
        classification_type=row["classification_type"],
        target_export_platforms=list(row["target_export_platforms"] or ()),
        created=to_proto(row["created"]),
        last_modified=to_proto(row["last_modified"]),
    )


def _tag_pb(row: dict[str, Any]) -> pb.Tag:
    return pb.Tag(
        id=str(row["id"]),
        project_id=str(row["project_id"]),
        name=row["name"],
        description=row.get("description") or "",
        type=row["type"],
        image_count=int(row["image_count"]),
    )


def _iteration_pb(row: dict[str, Any]) -> pb.Iteration:
    it = pb.Iteration(
        id=str(row["id"]),
        project_id=str(row["project_id"]),
        name=row["name"],
        status=row["status"],
        created=to_proto(row["created"]),
        last_modified=to_proto(row["last_modified"]),
        trained_at=to_proto(row["trained_at"]),
        domain_id=row["domain_id"],
        classification_type=row["classification_type"],
        training_type=row["training_type"],
        reserved_budget_in_hours=row["reserved_budget_in_hours"],
        training_time_in_minutes=row["training_time_in_minutes"],
        publish_name=row["publish_name"] or "",
        prediction_resource_id=row["prediction_resource_id"] or "",
        artifact_key=row["artifact_key"],
        error_message=row["error_message"],
        progress_stage=row["progress_stage"],
        progress_percent=row["progress_percent"],
        progress_eta_seconds=row.get("progress_eta_seconds") or 0.0,
    )
    if row.get("evaluation") is not None:
        it.evaluation = bytes(row["evaluation"])
        it.evaluation_image_ids.extend(str(i) for i in row.get("evaluation_image_ids") or ())
    if row.get("performance") is not None:
        json_format.ParseDict(row["performance"], it.performance)
    return it


def _image_pb(row: dict[str, Any], tags: Sequence[pb.ImageTag]) -> pb.Image:
    return pb.Image(
        id=str(row["id"]),
        project_id=str(row["project_id"]),
        sha256=row["sha256"],
        width=row["width"],
        height=row["height"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        created=to_proto(row["created"]),
        tags=list(tags),
        metadata={str(k): str(v) for k, v in (row["metadata"] or {}).items()},
    )


def _prediction_pb(row: dict[str, Any]) -> pb.StoredPrediction:
    return pb.StoredPrediction(
        id=str(row["id"]),
        project_id=str(row["project_id"]),
        iteration_id=str(row["iteration_id"]) if row["iteration_id"] else "",
        image_sha256=row["image_sha256"],
        width=row["width"],
        height=row["height"],
        application=row["application"],
        created=to_proto(row["created"]),
        predictions=[
            pb.PredictedTag(
                tag_id=r.get("tag_id", ""),
                tag_name=r.get("tag_name", ""),
                probability=float(r.get("probability", 0.0)),
            )
            for r in row["results"] or ()
        ],
    )


class MetadataCore:
    """Implements the metadata service over a psycopg connection pool.

    Args:
        pool: an open `psycopg_pool.ConnectionPool` on a migrated database (see migrate.py).
    """

    def __init__(self, pool: ConnectionPool):
        self._pool = pool

    # --- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        """A cursor in one transaction: committed when the block ends, rolled back on error."""
        with self._pool.connection() as conn:
            with conn.cursor(row_factory=dict_row) as cur:
                yield cur

    @staticmethod
    def _project(
        cur: psycopg.Cursor, account_id: str, project_id: str, lock: bool = False
    ) -> dict[str, Any]:
        row = cur.execute(
            "SELECT * FROM projects WHERE id = %s AND account_id = %s"
            + (" FOR UPDATE" if lock else ""),
            (parse_uuid(project_id), parse_uuid(account_id)),
        ).fetchone()
        if row is None:
            raise _not_found_project(project_id)
        return row

    @staticmethod
    def _iteration_row(
        cur: psycopg.Cursor, project_id: Any, iteration_id: str, lock: bool = False
    ) -> dict[str, Any]:
        row = cur.execute(
            f"SELECT {_ITERATION_COLUMNS}, it.evaluation, it.evaluation_image_ids FROM iterations it"
            " WHERE it.id = %s AND it.project_id = %s" + (" FOR UPDATE" if lock else ""),
            (parse_uuid(iteration_id), project_id),
        ).fetchone()
        if row is None:
            raise _not_found_iteration(iteration_id)
        return row

    @staticmethod
    def _tags(cur: psycopg.Cursor, project_id: Any) -> list[pb.Tag]:
        rows = cur.execute(
            f"SELECT {_TAG_COLUMNS} FROM tags t WHERE t.project_id = %s ORDER BY t.created, t.id",
            (project_id,),
        ).fetchall()
        return [_tag_pb(r) for r in rows]

    @staticmethod
    def _images_with_tags(cur: psycopg.Cursor, rows: list[dict[str, Any]]) -> list[pb.Image]:
        ids = [r["id"] for r in rows]
        tags: dict[Any, list[pb.ImageTag]] = {i: [] for i in ids}
        if ids:
            for link in cur.execute(
                "SELECT x.image_id, x.tag_id, x.created, t.name FROM image_tags x"
                " JOIN tags t ON t.id = x.tag_id WHERE x.image_id = ANY(%s)"
                " ORDER BY x.created, t.name",
                (ids,),
            ):
                tags[link["image_id"]].append(
                    pb.ImageTag(
                        tag_id=str(link["tag_id"]),
                        tag_name=link["name"],
                        created=to_proto(link["created"]),
                    )
                )
        return [_image_pb(r, tags[r["id"]]) for r in rows]

    @staticmethod
    def _snapshot_images_with_tags(
        cur: psycopg.Cursor, rows: list[dict[str, Any]], iteration: dict[str, Any]
    ) -> list[pb.Image]:
        """Images with the tags an iteration's training set gave them (rows carry
        snapshot_tag_ids). Tag names are the iteration's; a link's time is the live link's
        when it still exists, else the iteration's creation."""
        names = {
            r["tag_id"]: r["name"]
            for r in cur.execute(
                "SELECT tag_id, name FROM iteration_tags WHERE iteration_id = %s",
                (iteration["id"],),
            )
        }
        ids = [r["id"] for r in rows]
        live: dict[tuple[Any, Any], Any] = {}
        if ids:
            live = {
                (r["image_id"], r["tag_id"]): r["created"]
                for r in cur.execute(
                    "SELECT image_id, tag_id, created FROM image_tags WHERE image_id = ANY(%s)",
                    (ids,),
                )
            }
        images = []
        for r in rows:
            links = sorted(
                (
                    (live.get((r["id"], t), iteration["created"]), names.get(t, ""), t)
                    for t in r["snapshot_tag_ids"] or ()
                ),
                key=lambda link: (link[0], link[1], str(link[2])),
            )
            tags = [
                pb.ImageTag(tag_id=str(t), tag_name=name, created=to_proto(created))
                for created, name, t in links
            ]
            row = {k: v for k, v in r.items() if k != "snapshot_tag_ids"}
            images.append(_image_pb(row, tags))
        return images

    # --- accounts and keys ---------------------------------------------------------------------

    def create_account(self, name: str) -> pb.Account:
        """Creates an account with a fresh training key and prediction key (returned only here)."""
        name = (name or "").strip()
        if not name or len(name) > rules.MAX_NAME_LENGTH:
            raise BadRequest("account name must be 1 to 255 characters", "BadRequest")
        account_id = str(uuid.uuid4())
        resource = rules.prediction_resource_id(account_id)
        training_key, prediction_key = rules.new_key(), rules.new_key()
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO accounts (id, name, prediction_resource_id) VALUES (%s, %s, %s)",
                (account_id, name, resource),
            )
            cur.executemany(
                "INSERT INTO api_keys (key_sha256, account_id, kind) VALUES (%s, %s, %s)",
                [
                    (rules.hash_key(training_key), account_id, rules.KEY_TRAINING),
                    (rules.hash_key(prediction_key), account_id, rules.KEY_PREDICTION),
                ],
            )
        return pb.Account(
            id=account_id,
            name=name,
            training_key=training_key,
            prediction_key=prediction_key,
            prediction_resource_id=resource,
        )

    def ensure_account(self, account_id: str, name: str, training_key: str, prediction_key: str) -> pb.Account:
        """Creates the account with the given id and keys unless it exists (an install's first
        account, whose keys an operator or the Helm chart chose). Idempotent: a second call with
        the same values changes nothing; keys that already belong to another account, or an
        existing account that lacks one of the keys, are a Conflict.
        """
        name = (name or "").strip()
        if not name or len(name) > rules.MAX_NAME_LENGTH:
            raise BadRequest("account name must be 1 to 255 characters", "BadRequest")
        try:
            account_id = str(uuid.UUID(account_id))
        except (ValueError, TypeError, AttributeError):
            raise BadRequest("account id must be a UUID", "BadRequest") from None
        keys = {rules.KEY_TRAINING: training_key or "", rules.KEY_PREDICTION: prediction_key or ""}
        for kind, key in keys.items():
            if len(key) < 16:
                raise BadRequest(f"the {kind} key must have at least 16 characters", "BadRequest")
        resource = rules.prediction_resource_id(account_id)
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO accounts (id, name, prediction_resource_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (account_id, name, resource),
            )
            for kind, key in keys.items():
                cur.execute(
                    "INSERT INTO api_keys (key_sha256, account_id, kind) VALUES (%s, %s, %s)"
                    " ON CONFLICT (key_sha256) DO NOTHING",
                    (rules.hash_key(key), account_id, kind),
                )
                row = cur.execute(
                    "SELECT account_id, kind FROM api_keys WHERE key_sha256 = %s", (rules.hash_key(key),)
                ).fetchone()
                if str(row["account_id"]) != account_id or row["kind"] != kind:
                    raise Conflict(f"the {kind} key already belongs to another account", "Conflict")
        return pb.Account(
            id=account_id,
            name=name,
            training_key=training_key,
            prediction_key=prediction_key,
            prediction_resource_id=resource,
        )

    def resolve_key(self, key: str) -> KeyInfo:
        """The account and kind of an API key; NotFound when the key is unknown."""
        with self._tx() as cur:
            row = cur.execute(
                "SELECT k.account_id, k.kind, a.prediction_resource_id FROM api_keys k"
                " JOIN accounts a ON a.id = k.account_id WHERE k.key_sha256 = %s",
                (rules.hash_key(key or ""),),
            ).fetchone()
        if row is None:
            raise NotFound("unknown key", "NotFound")
        return KeyInfo(str(row["account_id"]), row["kind"], row["prediction_resource_id"])

    # --- projects ------------------------------------------------------------------------------

    def create_project(
        self,
        account_id: str,
        name: str,
        description: str = "",
        domain_id: str = "",
        classification_type: str = "",
        target_export_platforms: Sequence[str] = (),
    ) -> pb.Project:
        name = rules.project_name(name)
        description = rules.project_description(description)
        classification = rules.classification_type(classification_type)
        with self._tx() as cur:
            account = cur.execute(
                "SELECT 1 FROM accounts WHERE id = %s", (parse_uuid(account_id),)
            ).fetchone()
            if account is None:
                raise NotFound(f"account {account_id!r} not found", "NotFound")
            row = cur.execute(
                "INSERT INTO projects (id, account_id, name, description, domain_id,"
                " classification_type, target_export_platforms)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    uuid.uuid4(),
                    account_id,
                    name,
                    description,
                    domain_id or "",
                    classification,
                    list(target_export_platforms),
                ),
            ).fetchone()
        return _project_pb(row)

    def get_project(self, account_id: str, project_id: str) -> pb.Project:
        with self._tx() as cur:
            return _project_pb(self._project(cur, account_id, project_id))

    def list_projects(self, account_id: str) -> list[pb.Project]:
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT * FROM projects WHERE account_id = %s ORDER BY created DESC, id DESC",
                (parse_uuid(account_id),),
            ).fetchall()
        return [_project_pb(r) for r in rows]

    def update_project(
        self,
        account_id: str,
        project_id: str,
        update_mask: Sequence[str],
        name: str = "",
        description: str = "",
        domain_id: str = "",
        classification_type: str = "",
    ) -> pb.Project:
        """Changes only the fields named in `update_mask`."""
        changes: dict[str, Any] = {}
        for field in update_mask:
            if field == "name":
                changes["name"] = rules.project_name(name)
            elif field == "description":
                changes["description"] = rules.project_description(description)
            elif field == "domain_id":
                changes["domain_id"] = domain_id or ""
            elif field == "classification_type":
                changes["classification_type"] = rules.classification_type(classification_type)
            else:
                raise BadRequest(f"field {field!r} cannot be updated", "BadRequest")
        with self._tx() as cur:
            self._project(cur, account_id, project_id, lock=True)
            assignments = "".join(f"{column} = %({column})s, " for column in changes)
            row = cur.execute(
                f"UPDATE projects SET {assignments}last_modified = now()"
                " WHERE id = %(id)s RETURNING *",
                {**changes, "id": parse_uuid(project_id)},
            ).fetchone()
        return _project_pb(row)

    def delete_project(self, account_id: str, project_id: str) -> DeletedProject:
        """Deletes the project and every row below it.

        Returns:
            Every image hash stored for the project (training images and stored predictions)
            and every artifact key of its iterations, for the caller to remove from storage.
        """
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id, lock=True)
            hashes = [
                r["sha256"]
                for r in cur.execute(
                    "SELECT sha256 FROM images WHERE project_id = %(p)s UNION"
                    " SELECT image_sha256 FROM predictions WHERE project_id = %(p)s"
                    " ORDER BY 1",
                    {"p": project["id"]},
                )
            ]
            keys = [
                r["artifact_key"]
                for r in cur.execute(
                    "SELECT artifact_key FROM iterations WHERE project_id = %s"
                    " AND artifact_key <> '' ORDER BY created",
                    (project["id"],),
                )
            ]
            cur.execute("DELETE FROM projects WHERE id = %s", (project["id"],))
        return DeletedProject(hashes, keys)

    # --- tags ----------------------------------------------------------------------------------

    def create_tag(
        self, account_id: str, project_id: str, name: str, description: str = "", type: str = ""
    ) -> pb.Tag:
        name = rules.tag_name(name)
        description = rules.tag_description(description)
        kind = rules.tag_type(type)
        try:
            with self._tx() as cur:
                project = self._project(cur, account_id, project_id)
                row = cur.execute(
                    "INSERT INTO tags (id, project_id, name, description, type)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    " RETURNING id, project_id, name, description, type, 0 AS image_count",
                    (uuid.uuid4(), project["id"], name, description, kind),
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == "tags_project_negative_uq":
                raise Conflict(
                    "the project already has a Negative tag", "BadRequestMultipleNegativeTag"
                ) from None
            raise Conflict(
                f"the project already has a tag named {name!r}", "BadRequestTagNameNotUnique"
            ) from None
        return _tag_pb(row)

    def get_tag(
        self, account_id: str, project_id: str, tag_id: str, iteration_id: str = ""
    ) -> pb.Tag:
        """One tag; with `iteration_id`, as that iteration's training set saw it."""
        if iteration_id:
            for tag in self.list_tags(account_id, project_id, iteration_id):
                if parse_uuid(tag.id) == parse_uuid(tag_id):
                    return tag
            raise _not_found_tag(tag_id)
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = cur.execute(
                f"SELECT {_TAG_COLUMNS} FROM tags t WHERE t.id = %s AND t.project_id = %s",
                (parse_uuid(tag_id), project["id"]),
            ).fetchone()
        if row is None:
            raise _not_found_tag(tag_id)
        return _tag_pb(row)

    def list_tags(self, account_id: str, project_id: str, iteration_id: str = "") -> list[pb.Tag]:
        """A project's tags with their image counts now or, with `iteration_id`, the tags of that
        iteration's training set with their counts then (name and type as trained; the
        description is the tag's current one while the tag exists)."""
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            if not iteration_id:
                return self._tags(cur, project["id"])
            row = self._iteration_row(cur, project["id"], iteration_id)
            rows = cur.execute(
                "SELECT it.tag_id AS id, %(p)s AS project_id, it.name, it.type, it.image_count,"
                " coalesce(t.description, '') AS description"
                " FROM iteration_tags it LEFT JOIN tags t ON t.id = it.tag_id"
                " WHERE it.iteration_id = %(it)s ORDER BY t.created NULLS LAST, it.name, it.tag_id",
                {"p": project["id"], "it": row["id"]},
            ).fetchall()
        return [_tag_pb(r) for r in rows]

    def update_tag(
        self,
        account_id: str,
        project_id: str,
        tag_id: str,
        update_mask: Sequence[str],
        name: str = "",
        description: str = "",
        type: str = "",
    ) -> pb.Tag:
        """Changes the fields named in `update_mask` (name, description, type).

        Making a tag Negative is refused while one of its images carries another tag
        (BadRequestNegativeAndRegularTagOnSameImage), as an upload would be.
        """
        changes: dict[str, Any] = {}
        for field in update_mask:
            if field == "name":
                changes["name"] = rules.tag_name(name)
            elif field == "description":
                changes["description"] = rules.tag_description(description)
            elif field == "type":
                changes["type"] = rules.tag_type(type)
            else:
                raise BadRequest(f"field {field!r} cannot be updated", "BadRequest")
        try:
            with self._tx() as cur:
                project = self._project(cur, account_id, project_id, lock=True)
                tid = parse_uuid(tag_id)
                current = cur.execute(
                    "SELECT id, type FROM tags WHERE id = %s AND project_id = %s FOR UPDATE",
                    (tid, project["id"]),
                ).fetchone()
                if current is None:
                    raise _not_found_tag(tag_id)
                if changes.get("type") == "Negative" and current["type"] != "Negative":
                    mixed = cur.execute(
                        "SELECT 1 FROM image_tags x JOIN image_tags y ON y.image_id = x.image_id"
                        " AND y.tag_id <> x.tag_id WHERE x.tag_id = %s LIMIT 1",
                        (tid,),
                    ).fetchone()
                    if mixed:
                        raise BadRequest(
                            "an image of this tag has other tags; it cannot become Negative",
                            "BadRequestNegativeAndRegularTagOnSameImage",
                        )
                if changes:
                    assignments = ", ".join(f"{column} = %({column})s" for column in changes)
                    cur.execute(
                        f"UPDATE tags SET {assignments} WHERE id = %(id)s", {**changes, "id": tid}
                    )
                    cur.execute(
                        "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                    )
                row = cur.execute(
                    f"SELECT {_TAG_COLUMNS} FROM tags t WHERE t.id = %s", (tid,)
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == "tags_project_negative_uq":
                raise Conflict(
                    "the project already has a Negative tag", "BadRequestMultipleNegativeTag"
                ) from None
            raise Conflict(
                f"the project already has a tag named {changes.get('name')!r}",
                "BadRequestTagNameNotUnique",
            ) from None
        return _tag_pb(row)

    def delete_tag(self, account_id: str, project_id: str, tag_id: str) -> None:
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM tags WHERE id = %s AND project_id = %s",
                (parse_uuid(tag_id), project["id"]),
            ).rowcount
        if not deleted:
            raise _not_found_tag(tag_id)

    # --- images --------------------------------------------------------------------------------

    def add_images(
        self, account_id: str, project_id: str, images: Sequence[pb.NewImage]
    ) -> list[tuple[str, pb.Image]]:
        """Adds image rows and their tag links in one transaction.

        An image whose hash the project already holds (or that appears earlier in the same
        batch) is reported "OKDuplicate" with the existing row, and the new tags are merged into
        it. Any invalid input (an unknown tag, the Negative tag with a regular one) stores
        nothing at all.

        Returns:
            (status, image) per request image, in request order.
        """
        hashes = [rules.sha256_hex(image.sha256) for image in images]
        tag_lists = [rules.parse_uuids(image.tag_ids, "BadRequestImageTags") for image in images]
        wanted = {t for tags in tag_lists for t in tags}
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            types = {
                r["id"]: r["type"]
                for r in cur.execute(
                    "SELECT id, type FROM tags WHERE project_id = %s AND id = ANY(%s)",
                    (project["id"], list(wanted)),
                )
            }
            unknown = wanted - types.keys()
            if unknown:
                raise BadRequest(
                    f"unknown tag id(s) for this project: {', '.join(sorted(map(str, unknown)))}",
                    "BadRequestImageTags",
                )
            for tags in tag_lists:
                rules.check_image_tag_types(tags, types)

            statuses: list[tuple[str, Any]] = []
            for image, sha, tags in zip(images, hashes, tag_lists):
                # clock_timestamp(), not now(): images of one batch keep their order in lists.
                row = cur.execute(
                    "INSERT INTO images (id, project_id, sha256, width, height, content_type,"
                    " size_bytes, metadata, created)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp())"
                    " ON CONFLICT (project_id, sha256) DO NOTHING RETURNING id",
                    (
                        uuid.uuid4(),
                        project["id"],
                        sha,
                        image.width,
                        image.height,
                        image.content_type,
                        image.size_bytes,
                        Jsonb(dict(image.metadata)),
                    ),
                ).fetchone()
                status = "OK"
                if row is None:
                    status = "OKDuplicate"
                    row = cur.execute(
                        "SELECT id FROM images WHERE project_id = %s AND sha256 = %s",
                        (project["id"], sha),
                    ).fetchone()
                if tags:
                    cur.executemany(
                        "INSERT INTO image_tags (image_id, tag_id, created)"
                        " VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                        [(row["id"], t) for t in tags],
                    )
                statuses.append((status, row["id"]))

            ids = list({image_id for _, image_id in statuses})
            # Merged tags of a duplicate may mix Negative and regular: refuse the whole batch.
            mixed = cur.execute(
                "SELECT x.image_id FROM image_tags x JOIN tags t ON t.id = x.tag_id"
                " WHERE x.image_id = ANY(%s) GROUP BY x.image_id"
                " HAVING bool_or(t.type = 'Negative') AND bool_or(t.type <> 'Negative')",
                (ids,),
            ).fetchone()
            if mixed:
                raise BadRequest(
                    "an image cannot have the Negative tag and a regular tag",
                    "BadRequestNegativeAndRegularTagOnSameImage",
                )
            rows = cur.execute("SELECT * FROM images WHERE id = ANY(%s)", (ids,)).fetchall()
            by_id = {img.id: img for img in self._images_with_tags(cur, rows)}
            if statuses:
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )
        return [(status, by_id[str(image_id)]) for status, image_id in statuses]

    def list_images(
        self,
        account_id: str,
        project_id: str,
        tagging_status: str = "",
        tag_ids: Sequence[str] = (),
        order_by: str = "",
        take: int = 0,
        skip: int = 0,
        image_ids: Sequence[str] = (),
        iteration_id: str = "",
        metadata_filter: pb.MetadataFilter | None = None,
    ) -> ImagePage:
        """A page of a project's images in a stable order, (created, id), and the total count.

        Args:
            tagging_status: "" (all), "Tagged" or "Untagged".
            tag_ids: only images carrying any of these tags.
            order_by: "Newest" (default) or "Oldest".
            take: page size (default 50; with image_ids, all of them); skip: offset.
            image_ids: only these images (unknown ids are left out).
            iteration_id: when set, the iteration's training set as snapshotted at
                CreateIteration: its images (those still stored) with the tags they had then;
                tagging status and tag_ids apply to those snapshotted tags. NotFoundIteration
                when the project has no such iteration.
            metadata_filter: only images whose (current) metadata satisfies it.
        """
        status = (tagging_status or "").lower()
        if status not in ("", "tagged", "untagged"):
            raise BadRequest(f"unknown tagging status {tagging_status!r}", "BadRequest")
        order = (order_by or "Newest").lower()
        if order not in ("newest", "oldest"):
            raise BadRequest(f"unknown order {order_by!r}", "BadRequest")
        if take < 0 or skip < 0:
            raise BadRequest("take and skip must not be negative", "BadRequest")
        tags = rules.parse_uuids(tag_ids)
        ids = rules.parse_uuids(image_ids)
        if take == 0:
            take = len(ids) if ids else DEFAULT_TAKE

        params: dict[str, Any] = {"tags": tags, "ids": ids, "take": take, "skip": skip}
        where = ["i.project_id = %(project)s"]
        if iteration_id:
            # The snapshot: iteration_images.tag_ids, not the live image_tags links.
            source = (
                "images i JOIN iteration_images ii"
                " ON ii.image_id = i.id AND ii.iteration_id = %(iteration)s"
            )
            columns = "i.*, ii.tag_ids AS snapshot_tag_ids"
            if status == "tagged":
                where.append("cardinality(ii.tag_ids) > 0")
            elif status == "untagged":
                where.append("cardinality(ii.tag_ids) = 0")
            if tags:
                where.append("ii.tag_ids && %(tags)s::uuid[]")
        else:
            source, columns = "images i", "i.*"
            if status == "tagged":
                where.append("EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
            elif status == "untagged":
                where.append("NOT EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id)")
            if tags:
                where.append(
                    "EXISTS (SELECT 1 FROM image_tags x WHERE x.image_id = i.id"
                    " AND x.tag_id = ANY(%(tags)s))"
                )
        if ids:
            where.append("i.id = ANY(%(ids)s)")
        if metadata_filter is not None and metadata_filter.WhichOneof("node") is not None:
            where.append(_metadata_filter_sql(metadata_filter, params))
        direction = "DESC" if order == "newest" else "ASC"
        condition = " AND ".join(where)
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            params["project"] = project["id"]
            iteration = None
            if iteration_id:
                iteration = self._iteration_row(cur, project["id"], iteration_id)
                params["iteration"] = iteration["id"]
            total = cur.execute(
                f"SELECT count(*) AS n FROM {source} WHERE {condition}", params
            ).fetchone()["n"]
            rows = cur.execute(
                f"SELECT {columns} FROM {source} WHERE {condition}"
                f" ORDER BY i.created {direction}, i.id {direction}"
                " LIMIT %(take)s OFFSET %(skip)s",
                params,
            ).fetchall()
            if iteration is not None:
                images = self._snapshot_images_with_tags(cur, rows, iteration)
            else:
                images = self._images_with_tags(cur, rows)
            return ImagePage(images, int(total))

    def delete_images(
        self, account_id: str, project_id: str, image_ids: Sequence[str], all: bool = False
    ) -> list[str]:
        """Deletes images (every image of the project when `all` and no ids are given).

        An unknown id refuses the whole call (NotFoundImage) and deletes nothing.

        Returns:
            The deleted images' hashes whose bytes nothing in the project still needs (no stored
            prediction, no running training), so the caller can remove them from storage.
        """
        ids = rules.parse_uuids(image_ids)
        if not ids and not all:
            raise BadRequest("no image ids given", "BadRequestInvalidIds")
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            if ids:
                deleted = cur.execute(
                    "DELETE FROM images WHERE project_id = %s AND id = ANY(%s) RETURNING id, sha256",
                    (project["id"], ids),
                ).fetchall()
                missing = set(ids) - {r["id"] for r in deleted}
                if missing:
                    raise NotFound(
                        f"image(s) not found: {', '.join(sorted(map(str, missing)))}",
                        "NotFoundImage",
                    )
            else:
                deleted = cur.execute(
                    "DELETE FROM images WHERE project_id = %s RETURNING id, sha256",
                    (project["id"],),
                ).fetchall()
            hashes = sorted({r["sha256"] for r in deleted})
            if not hashes:
                return []
            still_used = {
                r["sha"]
                for r in cur.execute(
                    "SELECT image_sha256 AS sha FROM predictions"
                    " WHERE project_id = %(p)s AND image_sha256 = ANY(%(h)s)"
                    " UNION SELECT ii.sha256 FROM iteration_images ii"
                    " JOIN iterations it ON it.id = ii.iteration_id"
                    " WHERE it.project_id = %(p)s AND it.status = 'Training'"
                    " AND ii.sha256 = ANY(%(h)s)",
                    {"p": project["id"], "h": hashes},
                )
            }
            cur.execute("UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],))
        return [h for h in hashes if h not in still_used]

    def add_image_tags(
        self,
        account_id: str,
        project_id: str,
        links: Sequence[tuple[str, str]],
        max_tags_per_image: int = 0,
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
        """Links tags to images.

        Unknown images or tags refuse the whole call (NotFoundImage / BadRequestImageTags), as
        does a link that would put the Negative tag next to a regular one.

        Returns:
            (created, duplicated, exceeded) links as (image_id, tag_id), in request order.
        """
        parsed = [
            (rules.parse_uuids([i])[0], rules.parse_uuids([t], "BadRequestImageTags")[0])
            for i, t in links
        ]
        created: list[tuple[str, str]] = []
        duplicated: list[tuple[str, str]] = []
        exceeded: list[tuple[str, str]] = []
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id, lock=True)
            image_ids = list({i for i, _ in parsed})
            tag_ids = list({t for _, t in parsed})
            found = {
                r["id"]
                for r in cur.execute(
                    "SELECT id FROM images WHERE project_id = %s AND id = ANY(%s)",
                    (project["id"], image_ids),
                )
            }
            missing = set(image_ids) - found
            if missing:
                raise NotFound(
                    f"image(s) not found: {', '.join(sorted(map(str, missing)))}", "NotFoundImage"
                )
            types = {
                r["id"]: r["type"]
                for r in cur.execute(
                    "SELECT id, type FROM tags WHERE project_id = %s AND id = ANY(%s)",
                    (project["id"], tag_ids),
                )
            }
            unknown = set(tag_ids) - types.keys()
            if unknown:
                raise BadRequest(
                    f"unknown tag id(s) for this project: {', '.join(sorted(map(str, unknown)))}",
                    "BadRequestImageTags",
                )
            have: dict[Any, set[Any]] = {i: set() for i in image_ids}
            for r in cur.execute(
                "SELECT image_id, tag_id FROM image_tags WHERE image_id = ANY(%s)", (image_ids,)
            ):
                have[r["image_id"]].add(r["tag_id"])
            new_links = []
            for image_id, tag_id in parsed:
                link = (str(image_id), str(tag_id))
                if tag_id in have[image_id]:
                    duplicated.append(link)
                elif max_tags_per_image and len(have[image_id]) >= max_tags_per_image:
                    exceeded.append(link)
                else:
                    have[image_id].add(tag_id)
                    created.append(link)
                    new_links.append((image_id, tag_id))
            all_types = {
                r["id"]: r["type"]
                for r in cur.execute(
                    "SELECT id, type FROM tags WHERE project_id = %s", (project["id"],)
                )
            }
            for image_id in {i for i, _ in new_links}:
                rules.check_image_tag_types(have[image_id], all_types)
            if new_links:
                cur.executemany(
                    "INSERT INTO image_tags (image_id, tag_id, created)"
                    " VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                    new_links,
                )
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )
        return created, duplicated, exceeded

    def delete_image_tags(
        self, account_id: str, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]
    ) -> None:
        """Removes every link between the given images and tags; absent links are ignored."""
        images = rules.parse_uuids(image_ids)
        tags = rules.parse_uuids(tag_ids, "BadRequestImageTags")
        if not images or not tags:
            raise BadRequest("imageIds and tagIds are required", "BadRequestInvalidIds")
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM image_tags x USING images i WHERE i.id = x.image_id"
                " AND i.project_id = %s AND x.image_id = ANY(%s) AND x.tag_id = ANY(%s)",
                (project["id"], images, tags),
            ).rowcount
            if deleted:
                cur.execute(
                    "UPDATE projects SET last_modified = now() WHERE id = %s", (project["id"],)
                )

    def update_image_metadata(
        self,
        account_id: str,
        project_id: str,
        image_ids: Sequence[str],
        metadata: dict[str, str],
        max_keys_per_image: int = 0,
    ) -> list[tuple[str, str, dict[str, str]]]:
        """Merges `metadata` into each image's metadata.

        Returns:
            (image_id, status, metadata after the call) per requested id, in order; status is
            OK, ErrorImageNotFound or ErrorLimitExceed (more than max_keys_per_image keys).
        """
        ids = rules.parse_uuids(image_ids)
        results: list[tuple[str, str, dict[str, str]]] = []
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            current = {
                r["id"]: dict(r["metadata"] or {})
                for r in cur.execute(
                    "SELECT id, metadata FROM images WHERE project_id = %s AND id = ANY(%s)"
                    " FOR UPDATE",
                    (project["id"], ids),
                )
            }
            for image_id in ids:
                if image_id not in current:
                    results.append((str(image_id), "ErrorImageNotFound", {}))
                    continue
                merged = {**current[image_id], **metadata}
                if max_keys_per_image and len(merged) > max_keys_per_image:
                    results.append((str(image_id), "ErrorLimitExceed", current[image_id]))
                    continue
                cur.execute(
                    "UPDATE images SET metadata = %s WHERE id = %s", (Jsonb(merged), image_id)
                )
                current[image_id] = merged
                results.append((str(image_id), "OK", {str(k): str(v) for k, v in merged.items()}))
        return results

    # --- iterations ----------------------------------------------------------------------------

    def create_iteration(
        self,
        account_id: str,
        project_id: str,
        training_type: str = "",
        reserved_budget_in_hours: float = 0.0,
        force_train: bool = False,
        selected_tag_ids: Sequence[str] = (),
        min_images_per_tag: int = 0,
    ) -> pb.Iteration:
        """Starts an iteration (status Training) with its training set frozen.

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
            with self._tx() as cur:
                # The row lock serialises CreateIteration per project (check, then insert).
                project = self._project(cur, account_id, project_id, lock=True)
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
                        raise _not_found_tag(", ".join(sorted(map(str, unknown))))
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
                row = self._iteration_row(cur, pid, str(iteration_id))
        except psycopg.errors.UniqueViolation as err:
            if err.diag.constraint_name == "iterations_one_training_uq":
                raise Conflict(
                    "a training is already in progress", "BadRequestTrainingAlreadyInProgress"
                ) from None
            raise
        return _iteration_pb(row)

    def get_iteration(self, account_id: str, project_id: str, iteration_id: str) -> pb.Iteration:
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = self._iteration_row(cur, project["id"], iteration_id)
            if row["evaluation"] is not None and row["evaluation_image_ids"] is None:
                row = {**row, "evaluation_image_ids": self._training_order(cur, row["id"])}
            return _iteration_pb(row)

    @staticmethod
    def _training_order(cur: psycopg.Cursor, iteration_id: Any) -> list[Any]:
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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            rows = cur.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations it WHERE it.project_id = %s"
                " ORDER BY it.created DESC, it.id DESC",
                (project["id"],),
            ).fetchall()
        return [_iteration_pb(r) for r in rows]

    def delete_iteration(self, account_id: str, project_id: str, iteration_id: str) -> str:
        """Deletes an unpublished iteration; returns its artifact key ("" when none)."""
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = self._iteration_row(cur, project["id"], iteration_id, lock=True)
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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = self._iteration_row(cur, project["id"], iteration_id, lock=True)
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
            return _iteration_pb(
                {**self._iteration_row(cur, project["id"], iteration_id), "evaluation": None}
            )

    def get_training_set(self, iteration_id: str) -> TrainingSet:
        """The images and tags an iteration trains on, as frozen by create_iteration.

        Tags' image_count is their count in the training set.
        """
        with self._tx() as cur:
            row = cur.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations it WHERE it.id = %s",
                (parse_uuid(iteration_id),),
            ).fetchone()
            if row is None:
                raise _not_found_iteration(iteration_id)
            tags = [
                _tag_pb({**r, "project_id": row["project_id"]})
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
        return TrainingSet(_iteration_pb(row), tags, images)

    def report_progress(
        self, iteration_id: str, stage: str, percent: float, eta_seconds: float = 0.0
    ) -> None:
        """Records progress of a Training iteration; a late report after the end is ignored.

        Raises:
            NotFound: the iteration was deleted (a trainer takes this as its cancellation).
        """
        percent = min(100.0, max(0.0, float(percent)))
        eta = max(0.0, float(eta_seconds)) if eta_seconds == eta_seconds else 0.0  # NaN -> 0
        with self._tx() as cur:
            updated = cur.execute(
                "UPDATE iterations SET progress_stage = %s, progress_percent = %s,"
                " progress_eta_seconds = %s,"
                " last_modified = now() WHERE id = %s AND status = 'Training'",
                (stage or "", percent, min(eta, 1e9), parse_uuid(iteration_id)),
            ).rowcount
            if not updated and not cur.execute(
                "SELECT 1 FROM iterations WHERE id = %s", (parse_uuid(iteration_id),)
            ).fetchone():
                raise _not_found_iteration(iteration_id)

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
        with self._tx() as cur:
            row = cur.execute(
                "SELECT project_id, status FROM iterations WHERE id = %s FOR UPDATE",
                (parse_uuid(iteration_id),),
            ).fetchone()
            if row is None:
                raise _not_found_iteration(iteration_id)
            if row["status"] != TRAINING:
                return _iteration_pb(self._iteration_row(cur, row["project_id"], iteration_id)), True
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
            return _iteration_pb(self._iteration_row(cur, row["project_id"], iteration_id)), False

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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id, lock=True)
            resource = cur.execute(
                "SELECT prediction_resource_id FROM accounts WHERE id = %s",
                (project["account_id"],),
            ).fetchone()["prediction_resource_id"]
            if prediction_resource_id and prediction_resource_id != resource:
                raise BadRequest(
                    "unknown prediction resource", "BadRequestInvalidPublishTarget"
                )
            row = self._iteration_row(cur, project["id"], iteration_id, lock=True)
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
            return _iteration_pb(self._iteration_row(cur, project["id"], iteration_id))

    def unpublish_iteration(
        self, account_id: str, project_id: str, iteration_id: str
    ) -> pb.Iteration:
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = self._iteration_row(cur, project["id"], iteration_id, lock=True)
            if row["publish_name"] is None:
                raise Conflict(f"{row['name']} is not published", "BadRequestIterationNotPublished")
            cur.execute(
                "UPDATE iterations SET publish_name = NULL, prediction_resource_id = NULL,"
                " last_modified = now() WHERE id = %s",
                (row["id"],),
            )
            return _iteration_pb(self._iteration_row(cur, project["id"], iteration_id))

    def get_published_iteration(
        self, account_id: str, project_id: str, publish_name: str
    ) -> tuple[pb.Iteration, list[pb.Tag]]:
        """The iteration published under `publish_name` and the project's tags."""
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            row = cur.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations it"
                " WHERE it.project_id = %s AND it.publish_name = %s",
                (project["id"], publish_name),
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"no iteration is published as {publish_name!r}", "NotFoundIteration"
                )
            return _iteration_pb(row), self._tags(cur, project["id"])

    # --- predictions ---------------------------------------------------------------------------

    def record_prediction(self, prediction: pb.StoredPrediction) -> str:
        """Stores a prediction; returns its id. The iteration link is dropped if it is gone."""
        prediction_id = parse_uuid(prediction.id) or uuid.uuid4()
        created = from_proto(prediction.created) if prediction.HasField("created") else None
        results = [
            {"tag_id": p.tag_id, "tag_name": p.tag_name, "probability": p.probability}
            for p in prediction.predictions
        ]
        with self._tx() as cur:
            project = cur.execute(
                "SELECT id FROM projects WHERE id = %s", (parse_uuid(prediction.project_id),)
            ).fetchone()
            if project is None:
                raise _not_found_project(prediction.project_id)
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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            rows = cur.execute(
                "SELECT * FROM predictions WHERE project_id = %s"
                " ORDER BY created DESC, id DESC LIMIT %s",
                (project["id"], limit),
            ).fetchall()
        return [_prediction_pb(r) for r in rows]

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
            try:
                skip = int(json.loads(base64.urlsafe_b64decode(continuation.encode()))["skip"])
            except (binascii.Error, ValueError, KeyError, TypeError):
                raise BadRequest(
                    "invalid continuation token", "BadRequestPredictionInvalidQueryParameters"
                ) from None
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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            params["project"] = project["id"]
            rows = cur.execute(
                f"SELECT p.* FROM predictions p WHERE {' AND '.join(where)}"
                f" ORDER BY {order_sql} LIMIT %(limit)s OFFSET %(skip)s",
                params,
            ).fetchall()
        token = ""
        if len(rows) > limit:
            rows = rows[:limit]
            token = base64.urlsafe_b64encode(
                json.dumps({"skip": skip + limit}).encode()
            ).decode()
        return [_prediction_pb(r) for r in rows], token

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
        with self._tx() as cur:
            project = self._project(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM predictions WHERE project_id = %s AND id = ANY(%s)"
                " RETURNING image_sha256",
                (project["id"], parsed),
            ).fetchall()
            hashes = sorted({r["image_sha256"] for r in deleted})
            if not hashes:
                return []
            used = {
                r["sha"]
                for r in cur.execute(
                    "SELECT image_sha256 AS sha FROM predictions"
                    " WHERE project_id = %(p)s AND image_sha256 = ANY(%(h)s)"
                    " UNION SELECT sha256 FROM images WHERE project_id = %(p)s"
                    " AND sha256 = ANY(%(h)s)"
                    " UNION SELECT ii.sha256 FROM iteration_images ii"
                    " JOIN iterations it ON it.id = ii.iteration_id"
                    " WHERE it.project_id = %(p)s AND it.status = 'Training'"
                    " AND ii.sha256 = ANY(%(h)s)",
                    {"p": project["id"], "h": hashes},
                )
            }
        return [h for h in hashes if h not in used]
