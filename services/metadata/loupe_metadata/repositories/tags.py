"""Tags of a project, live or as an iteration's training set froze them."""
from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import AlreadyExists, BadRequest, Conflict
from loupe_metadata import quotas, rules
from loupe_metadata.db import Repository
from loupe_metadata.repositories.lookups import (
    iteration_row,
    not_found_tag,
    project_row,
    project_tags,
)
from loupe_metadata.repositories.rows import TAG_COLUMNS, tag_pb
from loupe_metadata.rules import parse_uuid


def _conflict(err: psycopg.errors.UniqueViolation, name: str | None) -> Conflict:
    """The Custom Vision error of a tag insert or update that broke a uniqueness constraint."""
    if err.diag.constraint_name == "tags_project_negative_uq":
        return Conflict("the project already has a Negative tag", "BadRequestMultipleNegativeTag")
    if err.diag.constraint_name == "tags_pkey":  # a concurrent import took the id first
        return AlreadyExists("the tag id is already used by another project", "Conflict")
    return Conflict(f"the project already has a tag named {name!r}", "BadRequestTagNameNotUnique")


class TagRepository(Repository):
    """Creates, reads, updates and deletes a project's tags."""

    def create_tag(
        self, account_id: str, project_id: str, name: str, description: str = "", type: str = ""
    ) -> pb.Tag:
        tag, _existed = self._create(account_id, project_id, uuid.uuid4(), name, description, type)
        return tag

    def import_tag(
        self, account_id: str, project_id: str, tag_id: str, name: str, description: str = "",
        type: str = "",
    ) -> tuple[pb.Tag, bool]:
        """Creates a tag with a given id (Loupe's import path), idempotently.

        Returns:
            (the tag, whether the project already had it: then it is returned unchanged).
        Raises:
            AlreadyExists: another project (of any account) has a tag of this id (Conflict).
        """
        (tid,) = rules.parse_uuids([tag_id])
        return self._create(account_id, project_id, tid, name, description, type)

    def _create(self, account_id: str, project_id: str, tag_id: uuid.UUID, name: str,
                description: str, type: str) -> tuple[pb.Tag, bool]:
        name = rules.tag_name(name)
        description = rules.tag_description(description)
        kind = rules.tag_type(type)
        try:
            with self._db.transaction() as cur:
                project = project_row(cur, account_id, project_id, lock=True)
                existing = cur.execute(
                    f"SELECT {TAG_COLUMNS} FROM tags t WHERE t.id = %s", (tag_id,)
                ).fetchone()
                if existing is not None:
                    if existing["project_id"] != project["id"]:
                        raise AlreadyExists(
                            f"tag id {tag_id} is already used by another project", "Conflict"
                        )
                    return tag_pb(existing), True
                held = cur.execute(
                    "SELECT count(*) AS n FROM tags WHERE project_id = %s", (project["id"],)
                ).fetchone()["n"]
                quotas.check(self._db.quotas, "tags", held + 1)
                row = cur.execute(
                    "INSERT INTO tags (id, project_id, name, description, type)"
                    " VALUES (%s, %s, %s, %s, %s)"
                    " RETURNING id, project_id, name, description, type, 0 AS image_count",
                    (tag_id, project["id"], name, description, kind),
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            raise _conflict(err, name) from None
        return tag_pb(row), False

    def get_tag(
        self, account_id: str, project_id: str, tag_id: str, iteration_id: str = ""
    ) -> pb.Tag:
        """One tag; with `iteration_id`, as that iteration's training set saw it."""
        if iteration_id:
            for tag in self.list_tags(account_id, project_id, iteration_id):
                if parse_uuid(tag.id) == parse_uuid(tag_id):
                    return tag
            raise not_found_tag(tag_id)
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            row = cur.execute(
                f"SELECT {TAG_COLUMNS} FROM tags t WHERE t.id = %s AND t.project_id = %s",
                (parse_uuid(tag_id), project["id"]),
            ).fetchone()
        if row is None:
            raise not_found_tag(tag_id)
        return tag_pb(row)

    def list_tags(self, account_id: str, project_id: str, iteration_id: str = "") -> list[pb.Tag]:
        """A project's tags with their image counts now or, with `iteration_id`, the tags of that
        iteration's training set with their counts then (name and type as trained; the
        description is the tag's current one while the tag exists)."""
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            if not iteration_id:
                return project_tags(cur, project["id"])
            row = iteration_row(cur, project["id"], iteration_id)
            rows = cur.execute(
                "SELECT it.tag_id AS id, %(p)s AS project_id, it.name, it.type, it.image_count,"
                " coalesce(t.description, '') AS description"
                " FROM iteration_tags it LEFT JOIN tags t ON t.id = it.tag_id"
                " WHERE it.iteration_id = %(it)s ORDER BY t.created NULLS LAST, it.name, it.tag_id",
                {"p": project["id"], "it": row["id"]},
            ).fetchall()
        return [tag_pb(r) for r in rows]

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
        changes = rules.masked_changes(update_mask, {
            "name": lambda: rules.tag_name(name),
            "description": lambda: rules.tag_description(description),
            "type": lambda: rules.tag_type(type),
        })
        try:
            with self._db.transaction() as cur:
                project = project_row(cur, account_id, project_id, lock=True)
                tid = parse_uuid(tag_id)
                current = cur.execute(
                    "SELECT id, type FROM tags WHERE id = %s AND project_id = %s FOR UPDATE",
                    (tid, project["id"]),
                ).fetchone()
                if current is None:
                    raise not_found_tag(tag_id)
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
                    f"SELECT {TAG_COLUMNS} FROM tags t WHERE t.id = %s", (tid,)
                ).fetchone()
        except psycopg.errors.UniqueViolation as err:
            raise _conflict(err, changes.get("name")) from None
        return tag_pb(row)

    def delete_tag(self, account_id: str, project_id: str, tag_id: str) -> None:
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id)
            deleted = cur.execute(
                "DELETE FROM tags WHERE id = %s AND project_id = %s",
                (parse_uuid(tag_id), project["id"]),
            ).rowcount
        if not deleted:
            raise not_found_tag(tag_id)
