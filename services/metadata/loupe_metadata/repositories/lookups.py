"""Reads and errors that more than one repository needs.

Every project-scoped read goes through `project_row`, which answers NotFoundProject for a
project of another account, so a key never learns that another account's project exists.
"""
from __future__ import annotations

from typing import Any

from loupe.v1 import metadata_pb2 as pb
from loupe_common.errors import NotFound
from loupe_metadata.db import Cursor
from loupe_metadata.repositories.rows import ITERATION_COLUMNS, TAG_COLUMNS, tag_pb
from loupe_metadata.rules import parse_uuid


def not_found_project(project_id: str) -> NotFound:
    return NotFound(f"project {project_id!r} not found", "NotFoundProject")


def not_found_iteration(iteration_id: str) -> NotFound:
    return NotFound(f"iteration {iteration_id!r} not found", "NotFoundIteration")


def not_found_tag(tag_id: str) -> NotFound:
    return NotFound(f"tag {tag_id!r} not found", "NotFoundTag")


def project_row(
    cur: Cursor, account_id: str, project_id: str, lock: bool = False
) -> dict[str, Any]:
    """The account's project row (`FOR UPDATE` with `lock`); NotFoundProject otherwise."""
    row = cur.execute(
        "SELECT * FROM projects WHERE id = %s AND account_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (parse_uuid(project_id), parse_uuid(account_id)),
    ).fetchone()
    if row is None:
        raise not_found_project(project_id)
    return row


def iteration_row(
    cur: Cursor, project_id: Any, iteration_id: str, lock: bool = False
) -> dict[str, Any]:
    """The project's iteration row with its evaluation (`FOR UPDATE` with `lock`);
    NotFoundIteration otherwise."""
    row = cur.execute(
        f"SELECT {ITERATION_COLUMNS}, it.evaluation, it.evaluation_image_ids FROM iterations it"
        " WHERE it.id = %s AND it.project_id = %s" + (" FOR UPDATE" if lock else ""),
        (parse_uuid(iteration_id), project_id),
    ).fetchone()
    if row is None:
        raise not_found_iteration(iteration_id)
    return row


def project_tags(cur: Cursor, project_id: Any) -> list[pb.Tag]:
    """A project's tags with their live image counts, oldest first."""
    rows = cur.execute(
        f"SELECT {TAG_COLUMNS} FROM tags t WHERE t.project_id = %s ORDER BY t.created, t.id",
        (project_id,),
    ).fetchall()
    return [tag_pb(r) for r in rows]
