"""More of the training API: tag / iteration updates, image tagging and metadata, per-image
performance, stored predictions (query, delete, add to the training set) and the Smart Labeler
(suggested tags for untagged images)."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict

from flask import Blueprint, Response, g, jsonify, request

from loupe.v1 import metadata_pb2 as mpb
from loupe_common import paging
from loupe_common.errors import BadRequest, Conflict, LoupeError, NotFound
from loupe_common.timeutil import iso, to_proto
from loupe_gateway import performance, serialize, signing, validation
from loupe_gateway.api.common import account, image_uri, no_content
from loupe_gateway.app import state
from loupe_gateway.clients import VARIANTS

log = logging.getLogger(__name__)
bp = Blueprint("training_more", __name__)

#: Custom Vision's limits for these operations.
MAX_TAGS_PER_IMAGE = 100
MAX_TAG_LINKS_PER_BATCH = 128
MAX_IDS = 64
MAX_TAKE = 256
DEFAULT_TAKE = 50
MAX_QUERY_TAGS = 20


def _json_body(what: str) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a {what} JSON object", "BadRequestRequiredParamIsNull")
    return body


def _ids(name: str, limit: int = MAX_IDS, code: str = "BadRequestInvalidIds") -> list[str]:
    ids = validation.parse_guid_list(request.args.get(name), code)
    if len(ids) > limit:
        raise BadRequest(f"at most {limit} ids in {name}", "BadRequestExceededBatchSize")
    return ids


# --- tags and iterations ---------------------------------------------------------------------


@bp.patch("/projects/<project_id>/tags/<tag_id>")
def update_tag(project_id: str, tag_id: str):
    body = _json_body("Tag")
    mask, fields = [], {}
    for key in ("name", "description", "type"):
        if body.get(key) is not None:
            mask.append(key)
            fields[key] = str(body[key])
    backends = state().backends
    if not mask:
        return jsonify(serialize.tag(backends.get_tag(account(), project_id, tag_id)))
    return jsonify(serialize.tag(backends.update_tag(account(), project_id, tag_id, mask, **fields)))


@bp.patch("/projects/<project_id>/iterations/<iteration_id>")
def update_iteration(project_id: str, iteration_id: str):
    body = _json_body("Iteration")
    backends = state().backends
    if body.get("name") is None:
        it = backends.get_iteration(account(), project_id, iteration_id)
    else:
        it = backends.update_iteration(account(), project_id, iteration_id, str(body["name"]))
    return jsonify(serialize.iteration(it))


# --- image tags and metadata -------------------------------------------------------------------


@bp.post("/projects/<project_id>/images/tags")
def create_image_tags(project_id: str):
    entries = _json_body("ImageTagCreateBatch").get("tags") or []
    if not isinstance(entries, list):
        raise BadRequest("tags must be a list", "BadRequestImageTags")
    if len(entries) > MAX_TAG_LINKS_PER_BATCH:
        raise BadRequest(
            f"at most {MAX_TAG_LINKS_PER_BATCH} image tags per batch", "BadRequestExceededBatchSize"
        )
    links = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequest("an image tag entry must be an object", "BadRequestImageTags")
        links.append((
            validation.parse_guid(entry.get("imageId")),
            validation.parse_guid(entry.get("tagId"), "BadRequestImageTags"),
        ))
    result = state().backends.add_image_tags(account(), project_id, links, MAX_TAGS_PER_IMAGE)

    def out(items):
        return [{"imageId": link.image_id, "tagId": link.tag_id} for link in items]

    return jsonify({
        "created": out(result.created),
        "duplicated": out(result.duplicated),
        "exceeded": out(result.exceeded),
    })


@bp.delete("/projects/<project_id>/images/tags")
def delete_image_tags(project_id: str):
    image_ids = _ids("imageIds")
    tag_ids = _ids("tagIds", 20, "BadRequestImageTags")
    state().backends.delete_image_tags(account(), project_id, image_ids, tag_ids)
    return no_content()


@bp.post("/projects/<project_id>/images/metadata")
def update_image_metadata(project_id: str):
    image_ids = _ids("imageIds")
    if not image_ids:
        raise BadRequest("imageIds is required", "BadRequestInvalidIds")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of strings", "BadRequestImageMetadataKey")
    metadata = validation.check_metadata(body)
    results = state().backends.update_image_metadata(
        account(), project_id, image_ids, metadata, validation.MAX_METADATA_KEYS
    )
    ok = all(r.status == "OK" for r in results)
    return jsonify({
        "isBatchSuccessful": ok,
        "images": [
            {"imageId": r.image_id, "status": r.status, "metadata": dict(r.metadata) or None}
            for r in results
        ],
    }), 200 if ok else 207


# --- per-image performance ---------------------------------------------------------------------


def _evaluated(project_id: str, iteration_id: str) -> tuple[mpb.Iteration, performance.StoredEvaluation]:
    it = state().backends.get_iteration(account(), project_id, iteration_id)
    if it.status != "Completed":
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    return it, performance.load(it)


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images")
def get_image_performances(project_id: str, iteration_id: str):
    args = request.args
    tag_ids = _ids("tagIds", 20, "BadRequestImageTags")
    take = validation.parse_int(args.get("take"), "take", DEFAULT_TAKE, 0, MAX_TAKE) or DEFAULT_TAKE
    skip = validation.parse_int(args.get("skip"), "skip", 0, 0)
    _it, stored = _evaluated(project_id, iteration_id)
    ids = performance.images_with_tags(stored, tag_ids)
    if not ids:
        return jsonify([])
    page = state().backends.list_images(
        account(), project_id, image_ids=ids, order_by=args.get("orderBy", ""), take=take,
        skip=skip,
    )
    predictions = performance.predictions_of(stored)
    types = {t.id: t.type for t in state().backends.list_tags(account(), project_id)}
    return jsonify([
        {
            "predictions": [
                {"probability": p, "tagId": t, "tagName": n, "boundingBox": None,
                 "tagType": types.get(t, "Regular")}
                for t, n, p in predictions.get(img.id, [])
            ],
            "id": img.id,
            "created": iso(img.created),
            "width": img.width,
            "height": img.height,
            "imageUri": image_uri(img, "resized"),
            "thumbnailUri": image_uri(img, "thumbnail"),
            "tags": [
                {"tagId": t.tag_id, "tagName": t.tag_name, "created": iso(t.created)}
                for t in img.tags
            ],
            "regions": [],
        }
        for img in page.images
    ])


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images/count")
def get_image_performance_count(project_id: str, iteration_id: str):
    tag_ids = _ids("tagIds", 20, "BadRequestImageTags")
    _it, stored = _evaluated(project_id, iteration_id)
    ids = performance.images_with_tags(stored, tag_ids)
    if not ids:
        return jsonify(0)
    page = state().backends.list_images(account(), project_id, image_ids=ids, take=1)
    return jsonify(page.total)


# --- stored predictions ------------------------------------------------------------------------


def _prediction_uri(project_id: str, prediction_id: str, variant: str) -> str:
    cfg = state().config
    path = (
        f"/customvision/{g.api_version}/training/projects/{project_id}/predictions/"
        f"{prediction_id}/{variant}"
    )
    query = signing.signed_query(
        cfg.url_signing_secret, path, account(), time.time(), cfg.url_ttl_seconds
    )
    return f"{request.host_url.rstrip('/')}{path}?{query}"


def _stored_prediction(p: mpb.StoredPrediction, domain: str, types: dict[str, str]) -> dict:
    ranked = sorted(p.predictions, key=lambda x: x.probability, reverse=True)
    return {
        "resizedImageUri": _prediction_uri(p.project_id, p.id, "resized"),
        "thumbnailUri": _prediction_uri(p.project_id, p.id, "thumbnail"),
        "originalImageUri": _prediction_uri(p.project_id, p.id, "original"),
        "domain": domain,
        "id": p.id,
        "project": p.project_id,
        "iteration": p.iteration_id or None,
        "created": iso(p.created),
        "predictions": [
            {"probability": x.probability, "tagId": x.tag_id, "tagName": x.tag_name,
             "boundingBox": None, "tagType": types.get(x.tag_id, "Regular")}
            for x in ranked
        ],
    }


def _timestamp(value, name: str):
    if value in (None, ""):
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be an ISO-8601 time", "BadRequestPredictionInvalidQueryParameters"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return to_proto(parsed)


@bp.post("/projects/<project_id>/predictions/query")
def query_predictions(project_id: str):
    token = _json_body("PredictionQueryToken")
    tags = token.get("tags") or []
    if not isinstance(tags, list) or len(tags) > MAX_QUERY_TAGS:
        raise BadRequest(
            f"at most {MAX_QUERY_TAGS} tags", "BadRequestPredictionTagsExceededCount"
        )
    max_count = token.get("maxCount") or 0
    if not isinstance(max_count, int) or max_count < 0:
        raise BadRequest("maxCount must be a positive integer",
                         "BadRequestPredictionInvalidQueryParameters")
    filters = []
    for t in tags:
        if not isinstance(t, dict):
            raise BadRequest("a tag filter must be an object",
                             "BadRequestPredictionInvalidQueryParameters")
        filters.append(mpb.PredictionTagFilter(
            tag_id=validation.parse_guid(t.get("id"), "BadRequestImageTags"),
            min_threshold=float(t.get("minThreshold") or 0.0),
            max_threshold=float(t.get("maxThreshold") or 0.0),
        ))
    query = mpb.QueryPredictionsRequest(
        account_id=account(), project_id=project_id, tags=filters,
        iteration_id=validation.parse_guid(token["iterationId"], "BadRequestPredictionInvalidQueryParameters")
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
    backends = state().backends
    result = backends.query_predictions(query)
    project = backends.get_project(account(), project_id)
    types = {t.id: t.type for t in backends.list_tags(account(), project_id)}
    next_token = dict(token)
    next_token["continuation"] = result.continuation or None
    return jsonify({
        "token": next_token,
        "results": [_stored_prediction(p, project.domain_id, types) for p in result.predictions],
    })


@bp.delete("/projects/<project_id>/predictions")
def delete_prediction(project_id: str):
    ids = _ids("ids")
    if not ids:
        raise BadRequest("ids is required", "BadRequestPredictionIdsMissing")
    backends = state().backends
    orphaned = backends.delete_predictions(account(), project_id, ids)
    if orphaned:
        try:
            backends.delete_image_data(project_id, orphaned)
        except LoupeError as err:
            log.warning("predictions of %s deleted, but not their bytes: %r", project_id, err)
    return no_content()


def _find_predictions(project_id: str, ids: list[str]) -> dict[str, mpb.StoredPrediction]:
    result = state().backends.query_predictions(mpb.QueryPredictionsRequest(
        account_id=account(), project_id=project_id, ids=ids, max_count=max(len(ids), 1)))
    return {p.id: p for p in result.predictions}


@bp.get("/projects/<project_id>/predictions/<prediction_id>/<variant>")
def prediction_image(project_id: str, prediction_id: str, variant: str):
    if variant not in VARIANTS:
        raise NotFound("unknown image variant", "NotFound")
    try:
        prediction_id = validation.parse_guid(prediction_id)
    except BadRequest:
        raise NotFound(f"prediction {prediction_id!r} not found", "NotFoundImage") from None
    found = _find_predictions(project_id, [prediction_id]).get(prediction_id)
    if found is None:
        raise NotFound(f"prediction {prediction_id!r} not found", "NotFoundImage")
    data = state().backends.get_image(project_id, found.image_sha256, variant)
    response = Response(data.data, mimetype=data.content_type or "application/octet-stream")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.post("/projects/<project_id>/images/predictions")
def create_images_from_predictions(project_id: str):
    cfg = state().config
    body = _json_body("ImageIdCreateBatch")
    batch, metadata = validation.parse_batch({**body, "images": body.get("images") or []},
                                             "ImageIdCreateBatch", cfg.max_batch_images,
                                             cfg.max_batch_tags)
    entries = [(validation.parse_guid(item.get("id")), tags) for item, tags in batch]
    backends = state().backends
    found = _find_predictions(project_id, [pid for pid, _ in entries])
    results: list[dict | None] = [None] * len(entries)
    new: list[tuple[int, mpb.NewImage]] = []
    for index, (pid, tags) in enumerate(entries):
        prediction = found.get(pid)
        if prediction is None:
            results[index] = serialize.image_create_result(pid, "ErrorSource", None)
            continue
        if len(tags) > cfg.max_batch_tags:
            results[index] = serialize.image_create_result(pid, "ErrorTagLimitExceed", None)
            continue
        try:
            data = backends.get_image(project_id, prediction.image_sha256, "original").data
            info = validation.check_image(data, cfg.max_training_image_bytes, cfg.max_image_side,
                                             cfg.max_aspect_ratio)
        except BadRequest as err:
            results[index] = serialize.image_create_result(
                pid, validation.upload_status(err), None)
            continue
        except NotFound:
            results[index] = serialize.image_create_result(pid, "ErrorSource", None)
            continue
        new.append((index, mpb.NewImage(
            sha256=prediction.image_sha256, width=info.width, height=info.height,
            content_type=info.content_type, size_bytes=info.size_bytes, tag_ids=tags,
            metadata=metadata,
        )))
    if new:
        added = backends.add_images(account(), project_id, [n for _, n in new])
        for (index, _n), result in zip(new, added):
            results[index] = serialize.image_create_result(
                entries[index][0], result.status, serialize.image(result.image, image_uri))
    final = [r for r in results if r is not None]
    failed = any(not r["status"].startswith("OK") for r in final)
    return jsonify(serialize.image_create_summary(final)), 207 if failed else 200


# --- smart labeler -----------------------------------------------------------------------------

#: (iteration id, image sha256) -> [(tag_id, tag_name, probability)], highest first. An
#: iteration's model never changes, so its suggestion for the same bytes never goes stale.
_SUGGESTIONS: OrderedDict[tuple[str, str], list[tuple[str, str, float]]] = OrderedDict()
_SUGGESTIONS_LOCK = threading.Lock()
_SUGGESTIONS_MAX = 20000


def _suggest(it: mpb.Iteration, img: mpb.Image) -> list[tuple[str, str, float]]:
    key = (it.id, img.sha256)
    with _SUGGESTIONS_LOCK:
        if key in _SUGGESTIONS:
            _SUGGESTIONS.move_to_end(key)
            return _SUGGESTIONS[key]
    backends = state().backends
    data = backends.get_image(it.project_id, img.sha256, "original").data
    result = backends.classify(
        project_id=it.project_id, iteration_id=it.id, artifact_key=it.artifact_key, image=data,
        store=False, application="",
    )
    ranked = sorted(((p.tag_id, p.tag_name, p.probability) for p in result.predictions),
                    key=lambda x: x[2], reverse=True)
    with _SUGGESTIONS_LOCK:
        _SUGGESTIONS[key] = ranked
        while len(_SUGGESTIONS) > _SUGGESTIONS_MAX:
            _SUGGESTIONS.popitem(last=False)
    return ranked


def uncertainty(ranked: list[tuple[str, str, float]], multilabel: bool) -> float:
    """How unsure the model is about an image, in [0, 1]: 1 - the top probability for a
    multiclass model; for a multilabel one, 1 - |2p - 1| of the tag closest to 0.5."""
    if not ranked:
        return 1.0
    if multilabel:
        return max(1.0 - abs(2.0 * p - 1.0) for _t, _n, p in ranked)
    return 1.0 - ranked[0][2]


def _trained_iteration(project_id: str, iteration_id: str | None) -> mpb.Iteration:
    if not iteration_id:
        raise BadRequest("iterationId is required", "BadRequestRequiredParamIsNull")
    it = state().backends.get_iteration(account(), project_id, validation.parse_guid(iteration_id))
    if it.status != "Completed" or not it.artifact_key:
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    return it


def _predictions_json(ranked, types: dict[str, str]) -> list[dict]:
    return [
        {"probability": p, "tagId": t, "tagName": n, "boundingBox": None,
         "tagType": types.get(t, "Regular")}
        for t, n, p in ranked
    ]


@bp.post("/projects/<project_id>/tagsandregions/suggestions")
def suggest_tags_and_regions(project_id: str):
    it = _trained_iteration(project_id, request.args.get("iterationId"))
    image_ids = _ids("imageIds")
    if not image_ids:
        raise BadRequest("imageIds is required", "BadRequestInvalidIds")
    backends = state().backends
    page = backends.list_images(account(), project_id, image_ids=image_ids, take=len(image_ids))
    found = {img.id: img for img in page.images}
    missing = [i for i in image_ids if i not in found]
    if missing:
        raise NotFound(f"image(s) not found: {', '.join(missing)}", "NotFoundImage")
    types = {t.id: t.type for t in backends.list_tags(account(), project_id)}
    multilabel = it.classification_type == "Multilabel"
    out = []
    for image_id in image_ids:
        ranked = _suggest(it, found[image_id])
        out.append({
            "id": image_id,
            "project": it.project_id,
            "iteration": it.id,
            "created": iso(found[image_id].created),
            "predictions": _predictions_json(ranked, types),
            "predictionUncertainty": uncertainty(ranked, multilabel),
        })
    return jsonify(out)


def _untagged(project_id: str) -> list[mpb.Image]:
    backends = state().backends
    images: list[mpb.Image] = []
    while True:
        page = backends.list_images(account(), project_id, tagging_status="Untagged",
                                    order_by="Oldest", take=MAX_TAKE, skip=len(images))
        images.extend(page.images)
        if not page.images or len(images) >= page.total:
            return images


def _matches(ranked, tag_ids: set[str], threshold: float) -> bool:
    return any(p >= threshold and (not tag_ids or t in tag_ids) for t, _n, p in ranked)


def _tag_filter(body: dict) -> tuple[set[str], float]:
    tag_ids = set(validation.parse_guid_list(body.get("tagIds") or [], "BadRequestImageTags"))
    try:
        threshold = float(body.get("threshold") or 0.0)
    except (TypeError, ValueError):
        raise BadRequest("threshold must be a number", "BadRequest") from None
    return tag_ids, threshold


@bp.post("/projects/<project_id>/images/suggested")
def query_suggested_images(project_id: str):
    it = _trained_iteration(project_id, request.args.get("iterationId"))
    body = _json_body("SuggestedTagAndRegionQueryToken")
    tag_ids, threshold = _tag_filter(body)
    sort_by = str(body.get("sortBy") or "UncertaintyAscending")
    if sort_by not in ("UncertaintyAscending", "UncertaintyDescending"):
        raise BadRequest(f"unknown sortBy {sort_by!r}", "BadRequest")
    max_count = body.get("maxCount") or DEFAULT_TAKE
    if not isinstance(max_count, int) or not 0 < max_count <= MAX_TAKE:
        raise BadRequest(f"maxCount must be 1 to {MAX_TAKE}", "BadRequest")
    skip = 0
    if body.get("continuation"):
        skip = paging.decode_skip(str(body["continuation"]))
    backends = state().backends
    types = {t.id: t.type for t in backends.list_tags(account(), project_id)}
    project = backends.get_project(account(), project_id)
    multilabel = it.classification_type == "Multilabel"
    matching = []
    for img in _untagged(project_id):
        ranked = _suggest(it, img)
        if _matches(ranked, tag_ids, threshold):
            matching.append((uncertainty(ranked, multilabel), img, ranked))
    # Ties keep upload order (oldest first), so paging is stable.
    matching.sort(key=lambda x: x[0], reverse=sort_by == "UncertaintyDescending")
    page = matching[skip:skip + max_count]
    token = dict(body)
    token["continuation"] = (
        paging.encode_skip(skip + max_count)
        if skip + max_count < len(matching) else None
    )
    return jsonify({
        "token": token,
        "results": [
            {
                "width": img.width,
                "height": img.height,
                "resizedImageUri": image_uri(img, "resized"),
                "thumbnailUri": image_uri(img, "thumbnail"),
                "originalImageUri": image_uri(img, "original"),
                "domain": project.domain_id,
                "id": img.id,
                "project": it.project_id,
                "iteration": it.id,
                "created": iso(img.created),
                "predictions": _predictions_json(ranked, types),
                "predictionUncertainty": unsure,
            }
            for unsure, img, ranked in page
        ],
    })


@bp.post("/projects/<project_id>/images/suggested/count")
def query_suggested_image_count(project_id: str):
    it = _trained_iteration(project_id, request.args.get("iterationId"))
    tag_ids, threshold = _tag_filter(_json_body("TagFilter"))
    counts = {t: 0 for t in sorted(tag_ids)}
    for img in _untagged(project_id):
        for t, _n, p in _suggest(it, img):
            if p >= threshold and (not tag_ids or t in tag_ids):
                counts[t] = counts.get(t, 0) + 1
    return jsonify(counts)
