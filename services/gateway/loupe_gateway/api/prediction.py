"""The prediction API (`/customvision/<version>/prediction`): classify an image with a
published iteration, storing it for the Predictions view unless the route is `nostore`."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from loupe_common.errors import BadRequest
from loupe_gateway import multipart, serialize, validation, versions
from loupe_gateway.app import state
from loupe_gateway.auth import HEADERS, PREDICTION, unauthorized

bp = Blueprint("prediction", __name__, url_prefix=versions.PREDICTION_PREFIX)

#: Room for multipart headers around a prediction image.
_MULTIPART_SLACK = 64 * 1024


@bp.url_value_preprocessor
def _pop_version(endpoint, values):
    g.api_version = (values or {}).pop("version", versions.PREDICTION_VERSIONS[-1])


@bp.before_request
def _authenticate():
    key = request.headers.get(HEADERS[PREDICTION])
    if not (key or "").strip():
        raise unauthorized()
    # An oversized body is refused before anything else is done with it (not even the key
    # lookup), so a flood of large requests costs no backend call.
    limit = state().config.max_prediction_image_bytes
    if multipart.is_multipart(request.content_type):
        limit += _MULTIPART_SLACK
    if request.content_length is not None and request.content_length > limit:
        raise _too_large()
    g.principal = state().keys.authenticate(PREDICTION, key)


def _too_large() -> BadRequest:
    limit = state().config.max_prediction_image_bytes
    return BadRequest(
        f"the image is larger than the {limit} bytes a prediction accepts",
        "BadRequestImageSizeBytes",
    )


def _image() -> bytes:
    """The image of the request: the first part of a multipart body, or the raw body."""
    limit = state().config.max_prediction_image_bytes
    body, too_large = multipart.read_body(
        multipart.stream_chunks(request.stream.read), limit + _MULTIPART_SLACK
    )
    if too_large:
        raise _too_large()
    if multipart.is_multipart(request.content_type):
        parts = multipart.parse_multipart(body, request.content_type or "", limit)
        if not parts:
            raise BadRequest("the request holds no image", "BadRequestImageStream")
        part = next((p for p in parts if p.name == "imageData"), parts[0])
        if part.too_large:
            raise _too_large()
        body = bytes(part.data)
    validation.check_image(body, limit, state().config.max_image_side)
    return body


def _classify(project_id: str, published_name: str, store: bool):
    image = _image()
    backends = state().backends
    published = backends.get_published_iteration(
        g.principal.account_id, project_id, published_name
    )
    it = published.iteration
    result = backends.classify(
        project_id=it.project_id or project_id,
        iteration_id=it.id,
        artifact_key=it.artifact_key,
        image=image,
        store=store,
        application=request.args.get("application", ""),
    )
    types = {t.id: t.type for t in published.tags}
    return jsonify(serialize.image_prediction(result, types))


@bp.post("/<project_id>/classify/iterations/<published_name>/image")
def classify_image(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=True)


@bp.post("/<project_id>/classify/iterations/<published_name>/image/nostore")
def classify_image_with_no_store(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=False)
