"""loupe.v1 messages -> Custom Vision JSON (camelCase, ISO-8601 UTC timestamps).

Field names follow the `_attribute_map` of the official SDK's models. Functions are pure; the
image URIs come from a caller-supplied `uri(image, variant)` so signing stays in the views.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe_common.timeutil import iso

from loupe_gateway import domains

UriFn = Callable[[mpb.Image, str], str | None]
#: (tag id, tag name, probability) of one tag, as ranked by a model (highest first).
Ranked = Sequence[tuple[str, str, float]]


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


def _variant_uris(uri: Callable[[str], str | None]) -> dict[str, str | None]:
    return {
        "resizedImageUri": uri("resized"),
        "thumbnailUri": uri("thumbnail"),
        "originalImageUri": uri("original"),
    }


def _image_tags(img: mpb.Image) -> list[dict[str, Any]]:
    return [{"tagId": t.tag_id, "tagName": t.tag_name, "created": iso(t.created)} for t in img.tags]


def image(img: mpb.Image, uri: UriFn | None = None) -> dict[str, Any]:
    link = uri or (lambda _img, _variant: None)
    return {
        "id": img.id,
        "created": iso(img.created),
        "width": img.width,
        "height": img.height,
        **_variant_uris(lambda variant: link(img, variant)),
        "tags": _image_tags(img),
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


def _prediction(prediction_id: str, project_id: str, iteration_id: str | None,
                created: Any, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    """The fields every prediction model (ImagePrediction, StoredImagePrediction,
    SuggestedTagAndRegion) starts with, in the SDK's order."""
    return {
        "id": prediction_id,
        "project": project_id,
        "iteration": iteration_id,
        "created": iso(created),
        "predictions": predictions,
    }


def ranked(predictions: Iterable[Any]) -> list[tuple[str, str, float]]:
    """(tag id, tag name, probability) of TagProbability / PredictedTag messages, highest
    probability first (ties keep their order)."""
    return sorted(((p.tag_id, p.tag_name, p.probability) for p in predictions),
                  key=lambda x: x[2], reverse=True)


def image_prediction(
    result: ppb.ClassifyResponse, tag_types: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """ImagePrediction of the prediction API and quick test; predictions sorted by
    probability, highest first."""
    types = tag_types or {}
    # The prediction API has always written tagType before boundingBox, the training API's
    # predictions (tag_predictions) the other way round; each order is kept as clients saw it.
    return _prediction(result.prediction_id, result.project_id, result.iteration_id,
                       result.created, [
                           {"probability": p, "tagId": t, "tagName": n,
                            "tagType": types.get(t, "Regular"), "boundingBox": None}
                           for t, n, p in ranked(result.predictions)
                       ])


def tag_predictions(predictions: Ranked, tag_types: Mapping[str, str]) -> list[dict[str, Any]]:
    """[Prediction] of the training API's models, in the order given."""
    return [
        {"probability": p, "tagId": t, "tagName": n, "boundingBox": None,
         "tagType": tag_types.get(t, "Regular")}
        for t, n, p in predictions
    ]


def image_performance(img: mpb.Image, predictions: Ranked, tag_types: Mapping[str, str],
                      uri: UriFn) -> dict[str, Any]:
    """ImagePerformance: an evaluated image with its held-out predictions."""
    return {
        "predictions": tag_predictions(predictions, tag_types),
        "id": img.id,
        "created": iso(img.created),
        "width": img.width,
        "height": img.height,
        "imageUri": uri(img, "resized"),
        "thumbnailUri": uri(img, "thumbnail"),
        "tags": _image_tags(img),
        "regions": [],
    }


def stored_prediction(p: mpb.StoredPrediction, domain: str, tag_types: Mapping[str, str],
                      uri: Callable[[str], str]) -> dict[str, Any]:
    """StoredImagePrediction; `uri(variant)` links the prediction's image."""
    return {
        **_variant_uris(uri),
        "domain": domain,
        **_prediction(p.id, p.project_id, p.iteration_id or None, p.created,
                      tag_predictions(ranked(p.predictions), tag_types)),
    }


def suggested_tags(image_id: str, it: mpb.Iteration, created: Any, predictions: Ranked,
                   uncertainty: float, tag_types: Mapping[str, str]) -> dict[str, Any]:
    """SuggestedTagAndRegion: the Smart Labeler's suggestion for one image."""
    return {
        **_prediction(image_id, it.project_id, it.id, created,
                      tag_predictions(predictions, tag_types)),
        "predictionUncertainty": uncertainty,
    }


def suggested_image(img: mpb.Image, it: mpb.Iteration, domain: str, predictions: Ranked,
                    uncertainty: float, tag_types: Mapping[str, str], uri: UriFn
                    ) -> dict[str, Any]:
    """StoredSuggestedTagAndRegion: an untagged image with its suggestion."""
    return {
        "width": img.width,
        "height": img.height,
        **_variant_uris(lambda variant: uri(img, variant)),
        "domain": domain,
        **suggested_tags(img.id, it, img.created, predictions, uncertainty, tag_types),
    }


def image_tag_create_summary(result: mpb.AddImageTagsResponse) -> dict[str, Any]:
    """ImageTagCreateSummary."""
    def links(items) -> list[dict[str, str]]:
        return [{"imageId": link.image_id, "tagId": link.tag_id} for link in items]

    return {
        "created": links(result.created),
        "duplicated": links(result.duplicated),
        "exceeded": links(result.exceeded),
    }


def image_metadata_update_summary(results: Sequence[mpb.ImageMetadataResult]
                                  ) -> dict[str, Any]:
    """ImageMetadataUpdateSummary; successful when every image was updated."""
    return {
        "isBatchSuccessful": all(r.status == "OK" for r in results),
        "images": [
            {"imageId": r.image_id, "status": r.status, "metadata": dict(r.metadata) or None}
            for r in results
        ],
    }
