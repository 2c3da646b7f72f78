"""loupe.v1 messages -> Custom Vision JSON (camelCase, ISO-8601 UTC timestamps).

Field names follow the `_attribute_map` of the official SDK's models. Functions are pure; the
image URIs come from a caller-supplied `uri(image, variant)` so signing stays in the views.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe_common.timeutil import iso

from loupe_gateway import domains

UriFn = Callable[[mpb.Image, str], str | None]


def _or_none(value: str) -> str | None:
    return value or None


def project(p: mpb.Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "settings": {
            "domainId": p.domain_id or domains.DEFAULT_DOMAIN,
            "classificationType": p.classification_type,
            "targetExportPlatforms": list(p.target_export_platforms),
            "useNegativeSet": True,
            "detectionParameters": None,
            "imageProcessingSettings": None,
            "exportModelContainerUri": None,
            "notificationQueueUri": None,
        },
        "created": iso(p.created),
        "lastModified": iso(p.last_modified),
        "thumbnailUri": None,
        "drModeEnabled": False,
        "status": "Succeeded",
    }


def tag(t: mpb.Tag) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "type": t.type or "Regular",
        "imageCount": t.image_count,
    }


def image(img: mpb.Image, uri: UriFn | None = None) -> dict[str, Any]:
    link = uri or (lambda _img, _variant: None)
    return {
        "id": img.id,
        "created": iso(img.created),
        "width": img.width,
        "height": img.height,
        "resizedImageUri": link(img, "resized"),
        "thumbnailUri": link(img, "thumbnail"),
        "originalImageUri": link(img, "original"),
        "tags": [
            {"tagId": t.tag_id, "tagName": t.tag_name, "created": iso(t.created)} for t in img.tags
        ],
        "regions": [],
        "metadata": dict(img.metadata) or None,
    }


def image_create_result(source: str, status: str, img: dict | None) -> dict[str, Any]:
    return {"sourceUrl": source, "status": status, "image": img}


def image_create_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Custom Vision reports a batch successful only when every image is newly created (OK)."""
    return {
        "isBatchSuccessful": bool(results) and all(r["status"] == "OK" for r in results),
        "images": results,
    }


def iteration(it: mpb.Iteration) -> dict[str, Any]:
    completed = it.status == "Completed"
    exportable = completed and domains.exportable(it.domain_id)
    out: dict[str, Any] = {
        "id": it.id,
        "name": it.name,
        "status": it.status,
        "created": iso(it.created),
        "lastModified": iso(it.last_modified),
        "trainedAt": iso(it.trained_at),
        "projectId": it.project_id,
        "exportable": exportable,
        "exportableTo": list(domains.EXPORT_PLATFORMS) if exportable else [],
        "domainId": it.domain_id or domains.DEFAULT_DOMAIN,
        "classificationType": it.classification_type,
        "trainingType": it.training_type or "Regular",
        "reservedBudgetInHours": int(it.reserved_budget_in_hours),
        "trainingTimeInMinutes": it.training_time_in_minutes,
        "publishName": _or_none(it.publish_name),
        "originalPublishResourceId": _or_none(it.prediction_resource_id),
        "customBaseModelInfo": None,
        "trainingErrorDetails": _or_none(it.error_message),
    }
    if it.status == "Training":
        # Loupe extension (Custom Vision has no progress): stage, percent done and the
        # trainer's estimate of the seconds left (null until it has one).
        out["progress"] = {
            "stage": it.progress_stage,
            "percent": it.progress_percent,
            "etaSeconds": round(it.progress_eta_seconds, 1) if it.progress_eta_seconds > 0 else None,
        }
    return out


def iteration_performance(perf: mpb.Performance) -> dict[str, Any]:
    return {
        "perTagPerformance": [
            {
                "id": t.tag_id,
                "name": t.name,
                "precision": t.precision,
                "precisionStdDeviation": t.precision_std_deviation,
                "recall": t.recall,
                "recallStdDeviation": t.recall_std_deviation,
                "averagePrecision": t.average_precision,
            }
            for t in perf.per_tag
        ],
        "precision": perf.precision,
        "precisionStdDeviation": perf.precision_std_deviation,
        "recall": perf.recall,
        "recallStdDeviation": perf.recall_std_deviation,
        "averagePrecision": perf.average_precision,
    }


def image_prediction(
    result: ppb.ClassifyResponse, tag_types: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """ImagePrediction; predictions sorted by probability, highest first."""
    types = tag_types or {}
    predictions: Iterable[ppb.TagProbability] = sorted(
        result.predictions, key=lambda p: p.probability, reverse=True
    )
    return {
        "id": result.prediction_id,
        "project": result.project_id,
        "iteration": result.iteration_id,
        "created": iso(result.created),
        "predictions": [
            {
                "probability": p.probability,
                "tagId": p.tag_id,
                "tagName": p.tag_name,
                "tagType": types.get(p.tag_id, "Regular"),
                "boundingBox": None,
            }
            for p in predictions
        ],
    }
