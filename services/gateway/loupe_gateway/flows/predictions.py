"""Stored predictions (what the prediction API and quick test keep for the Predictions view):
query, delete, their image bytes, and adding them to the training images."""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import storage_pb2 as spb
from loupe_common import storage_keys
from loupe_common.errors import BadRequest, LoupeError, NotFound
from loupe_common.timeutil import to_proto
from loupe_gateway import validation
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
from loupe_gateway.flows import tag_types, uploads

log = logging.getLogger(__name__)

#: Custom Vision's limit on the tag filters of one PredictionQueryToken.
MAX_QUERY_TAGS = 20
_INVALID_QUERY = "BadRequestPredictionInvalidQueryParameters"


def _timestamp(value: object, name: str) -> Timestamp | None:
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 time", _INVALID_QUERY) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return to_proto(parsed)


def query_request(token: dict, account_id: str, project_id: str) -> mpb.QueryPredictionsRequest:
    """The QueryPredictions request of a PredictionQueryToken (times without a zone are UTC).

    Raises:
        BadRequest: more than MAX_QUERY_TAGS tag filters, a negative or non-integer maxCount,
            a malformed tag filter, id or time.
    """
    tags = token.get("tags") or []
    if not isinstance(tags, list) or len(tags) > MAX_QUERY_TAGS:
        raise BadRequest(f"at most {MAX_QUERY_TAGS} tags", "BadRequestPredictionTagsExceededCount")
    max_count = token.get("maxCount") or 0
    if not isinstance(max_count, int) or max_count < 0:
        raise BadRequest("maxCount must be a positive integer", _INVALID_QUERY)
    filters = []
    for t in tags:
        if not isinstance(t, dict):
            raise BadRequest("a tag filter must be an object", _INVALID_QUERY)
        filters.append(mpb.PredictionTagFilter(
            tag_id=validation.parse_guid(t.get("id"), "BadRequestImageTags"),
            min_threshold=float(t.get("minThreshold") or 0.0),
            max_threshold=float(t.get("maxThreshold") or 0.0),
        ))
    query = mpb.QueryPredictionsRequest(
        account_id=account_id, project_id=project_id, tags=filters,
        iteration_id=validation.parse_guid(token["iterationId"], _INVALID_QUERY)
        if token.get("iterationId") else "",
        order_by=str(token.get("orderBy") or ""),
        max_count=max_count,
        continuation=str(token.get("continuation") or ""),
        application=str(token.get("application") or ""),
    )
    for name, field in (("startTime", "start_time"), ("endTime", "end_time")):
        ts = _timestamp(token.get(name), name)
        if ts is not None:
            getattr(query, field).CopyFrom(ts)
    return query


@dataclass(frozen=True)
class QueryPage:
    """One page of a prediction query, with what its JSON needs."""

    predictions: Sequence[mpb.StoredPrediction]
    #: The next page's token ("" on the last page).
    continuation: str
    domain: str
    tag_types: dict[str, str]


def query(backends: Backends, request: mpb.QueryPredictionsRequest) -> QueryPage:
    result = backends.query_predictions(request)
    project = backends.get_project(request.account_id, request.project_id)
    types = tag_types(backends, request.account_id, request.project_id)
    return QueryPage(result.predictions, result.continuation, project.domain_id, types)


def find(backends: Backends, account_id: str, project_id: str, ids: Sequence[str]
         ) -> dict[str, mpb.StoredPrediction]:
    """The stored predictions among `ids`, by id (unknown ids are left out)."""
    result = backends.query_predictions(mpb.QueryPredictionsRequest(
        account_id=account_id, project_id=project_id, ids=list(ids),
        max_count=max(len(ids), 1)))
    return {p.id: p for p in result.predictions}


def delete(backends: Backends, account_id: str, project_id: str, ids: Sequence[str]) -> None:
    """Deletes stored predictions, then the image bytes no row refers to any more (a failure
    there is logged: the predictions are gone either way)."""
    orphaned = backends.delete_predictions(account_id, project_id, ids)
    backends.stored_quota.forget(account_id)  # the quota they held is free at once
    if orphaned:
        try:
            backends.delete_image_data(project_id, orphaned,
                                       older_than_seconds=storage_keys.RECENT_WRITE_S)
        except LoupeError as err:
            log.warning("predictions of %s deleted, but not their bytes: %r", project_id, err)


def image(backends: Backends, account_id: str, project_id: str, prediction_id: str,
          variant: str) -> spb.GetImageResponse:
    """The bytes of a stored prediction's image.

    Raises:
        NotFound (NotFoundImage): no such prediction (or a malformed id).
    """
    try:
        prediction_id = validation.parse_guid(prediction_id)
    except BadRequest:
        raise NotFound(f"prediction {prediction_id!r} not found", "NotFoundImage") from None
    found = find(backends, account_id, project_id, [prediction_id]).get(prediction_id)
    if found is None:
        raise NotFound(f"prediction {prediction_id!r} not found", "NotFoundImage")
    return backends.get_image(project_id, found.image_sha256, variant)


def add_to_training_set(backends: Backends, config: GatewayConfig, account_id: str,
                        project_id: str, entries: Sequence[tuple[str, list[str]]],
                        metadata: dict[str, str], uri: Callable[[mpb.Image, str], str]
                        ) -> tuple[dict, int]:
    """Adds stored predictions' images to the training images, through the upload flow.

    Args:
        entries: (prediction id, the tag ids to give its image).
        metadata: the batch's image metadata.
    Returns:
        (ImageCreateSummary JSON, HTTP status), as uploads.upload; an unknown prediction or
        one whose image is gone is `ErrorSource`.
    """
    found = find(backends, account_id, project_id, [pid for pid, _ in entries])
    batch = []
    for pid, tags in entries:
        prediction = found.get(pid)
        data, status = None, None
        if prediction is None:
            status = "ErrorSource"
        elif len(tags) > config.max_batch_tags:  # refused before any byte is read
            status = "ErrorTagLimitExceed"
        else:
            try:
                data = backends.get_image(project_id, prediction.image_sha256, "original").data
            except BadRequest as err:
                status = validation.upload_status(err)
            except NotFound:
                status = "ErrorSource"
        batch.append(uploads.Entry(
            pid, data, len(data or b""), tags, error_status=status, metadata=metadata,
            stored_sha256=prediction.image_sha256 if prediction is not None else "",
        ))
    return uploads.upload(backends, config, account_id, project_id, batch, uri)
