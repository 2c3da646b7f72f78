"""Projects: an account's top-level aggregate, whose deletion removes every row below it."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import AlreadyExists, NotFound
from loupe_metadata import quotas, rules
from loupe_metadata.db import Repository
from loupe_metadata.repositories.lookups import project_row
from loupe_metadata.repositories.rows import project_pb
from loupe_metadata.rules import parse_uuid


@dataclass(frozen=True)
class DeletedProject:
    image_sha256: list[str]
    artifact_keys: list[str]


class ProjectRepository(Repository):
    """Creates, reads, updates and deletes an account's projects."""

    def create_project(
        self,
        account_id: str,
        name: str,
        description: str = "",
        domain_id: str = "",
        classification_type: str = "",
        target_export_platforms: Sequence[str] = (),
    ) -> pb.Project:
        project, _existed = self._create(account_id, uuid.uuid4(), name, description, domain_id,
                                         classification_type, target_export_platforms)
        return project

    def import_project(
        self,
        account_id: str,
        project_id: str,
        name: str,
        description: str = "",
        domain_id: str = "",
        classification_type: str = "",
        target_export_platforms: Sequence[str] = (),
    ) -> tuple[pb.Project, bool]:
        """Creates a project with a given id (Loupe's import path), idempotently.

        Returns:
            (the project, whether the account already held it: then it is returned unchanged).
        Raises:
            AlreadyExists: another account holds a project of this id (Conflict).
        """
        (pid,) = rules.parse_uuids([project_id])
        try:
            return self._create(account_id, pid, name, description, domain_id,
                                classification_type, target_export_platforms)
        except psycopg.errors.UniqueViolation:
            # Another account's import of the same id committed between our check and insert.
            raise AlreadyExists(
                f"project id {pid} is already used by another account", "Conflict"
            ) from None

    def _create(self, account_id: str, project_id: uuid.UUID, name: str, description: str,
                domain_id: str, classification_type: str,
                target_export_platforms: Sequence[str]) -> tuple[pb.Project, bool]:
        name = rules.project_name(name)
        description = rules.project_description(description)
        classification = rules.classification_type(classification_type)
        with self._db.transaction() as cur:
            # The account row's lock makes concurrent creates count one after the other.
            account = cur.execute(
                "SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (parse_uuid(account_id),)
            ).fetchone()
            if account is None:
                raise NotFound(f"account {account_id!r} not found", "NotFound")
            held = cur.execute(
                "SELECT count(*) AS n FROM projects WHERE account_id = %s", (parse_uuid(account_id),)
            ).fetchone()["n"]
            existing = cur.execute(
                "SELECT * FROM projects WHERE id = %s", (project_id,)
            ).fetchone()
            if existing is not None:
                if existing["account_id"] != parse_uuid(account_id):
                    raise AlreadyExists(
                        f"project id {project_id} is already used by another account", "Conflict"
                    )
                return project_pb(existing), True
            quotas.check(self._db.quotas, "projects", held + 1)
            row = cur.execute(
                "INSERT INTO projects (id, account_id, name, description, domain_id,"
                " classification_type, target_export_platforms)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    project_id,
                    account_id,
                    name,
                    description,
                    domain_id or "",
                    classification,
                    list(target_export_platforms),
                ),
            ).fetchone()
        return project_pb(row), False

    def get_project(self, account_id: str, project_id: str) -> pb.Project:
        with self._db.transaction() as cur:
            return project_pb(project_row(cur, account_id, project_id))

    def list_projects(self, account_id: str) -> list[pb.Project]:
        with self._db.transaction() as cur:
            rows = cur.execute(
                "SELECT * FROM projects WHERE account_id = %s ORDER BY created DESC, id DESC",
                (parse_uuid(account_id),),
            ).fetchall()
        return [project_pb(r) for r in rows]

    def existing_projects(self, project_ids: Sequence[str]) -> list[str]:
        """Which of `project_ids` exist, in any account (the orphan sweep: no account scope).
        Ids that are not UUIDs exist nowhere."""
        wanted = [u for u in (parse_uuid(p) for p in project_ids) if u is not None]
        if not wanted:
            return []
        with self._db.transaction() as cur:
            rows = cur.execute("SELECT id FROM projects WHERE id = ANY(%s)", (wanted,)).fetchall()
        return sorted(str(r["id"]) for r in rows)

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
        changes = rules.masked_changes(update_mask, {
            "name": lambda: rules.project_name(name),
            "description": lambda: rules.project_description(description),
            "domain_id": lambda: domain_id or "",
            "classification_type": lambda: rules.classification_type(classification_type),
        })
        with self._db.transaction() as cur:
            project_row(cur, account_id, project_id, lock=True)
            assignments = "".join(f"{column} = %({column})s, " for column in changes)
            row = cur.execute(
                f"UPDATE projects SET {assignments}last_modified = now()"
                " WHERE id = %(id)s RETURNING *",
                {**changes, "id": parse_uuid(project_id)},
            ).fetchone()
        return project_pb(row)

    def delete_project(self, account_id: str, project_id: str) -> DeletedProject:
        """Deletes the project and every row below it.

        Returns:
            Every image hash stored for the project (training images and stored predictions)
            and every artifact key of its iterations, for the caller to remove from storage.
        """
        with self._db.transaction() as cur:
            project = project_row(cur, account_id, project_id, lock=True)
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
