"""Rows to messages: the column lists the repositories select and the `loupe.v1` message each
kind of row becomes.

The messages serve as the domain types: they are already the public, versioned data model, and
copying them into parallel dataclasses would double the code without decoupling anything.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format

from loupe.v1 import metadata_pb2 as pb
from loupe_common.timeutil import to_proto

#: The columns of an iteration row (`it`) that `iteration_pb` reads, without the evaluation,
#: which can be large and only the single-iteration reads select.
ITERATION_COLUMNS = """
    it.id, it.project_id, it.name, it.status, it.created, it.last_modified, it.trained_at,
    it.domain_id, it.classification_type, it.training_type, it.reserved_budget_in_hours,
    it.training_time_in_minutes, it.publish_name, it.prediction_resource_id, it.artifact_key,
    it.error_message, it.progress_stage, it.progress_percent, it.performance,
    it.progress_eta_seconds
"""
#: The columns of a tag row (`t`) that `tag_pb` reads, with the tag's live image count.
TAG_COLUMNS = """
    t.id, t.project_id, t.name, t.description, t.type,
    (SELECT count(*) FROM image_tags x WHERE x.tag_id = t.id) AS image_count
"""


def project_pb(row: dict[str, Any]) -> pb.Project:
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


def tag_pb(row: dict[str, Any]) -> pb.Tag:
    return pb.Tag(
        id=str(row["id"]),
        project_id=str(row["project_id"]),
        name=row["name"],
        description=row.get("description") or "",
        type=row["type"],
        image_count=int(row["image_count"]),
    )


def iteration_pb(row: dict[str, Any]) -> pb.Iteration:
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


def image_pb(row: dict[str, Any], tags: Sequence[pb.ImageTag]) -> pb.Image:
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


def prediction_pb(row: dict[str, Any]) -> pb.StoredPrediction:
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
