"""The prediction API (`/customvision/<version>/prediction`): classify an image with a
published iteration, storing it for the Predictions view unless the route is `nostore`."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from loupe_gateway import multipart, serialize, validation, versions
from loupe_gateway.api import fetching
from loupe_gateway.app import state
from loupe_gateway.auth import HEADERS, PREDICTION, unauthorized
from loupe_gateway.flows import prediction as flow

bp = Blueprint("prediction", __name__, url_prefix=versions.PREDICTION_PREFIX)


@bp.url_value_preprocessor
def _pop_version(endpoint, values):
    g.api_version = (values or {}).pop("version", versions.PREDICTION_VERSIONS[-1])
    validation.canonical_path_ids(values)


@bp.before_request
def _authenticate():
    key = request.headers.get(HEADERS[PREDICTION])
    if not (key or "").strip():
        raise unauthorized()
    # An oversized body is refused before anything else is done with it (not even the key
    # lookup), so a flood of large requests costs no backend call.
    image_limit = state().config.max_prediction_image_bytes
    limit = image_limit
    if multipart.is_multipart(request.content_type):
        limit += fetching.MULTIPART_SLACK
    if request.content_length is not None and request.content_length > limit:
        raise fetching.too_large(image_limit)
    g.principal = state().keys.authenticate(PREDICTION, key, request.remote_addr or "")


def _image() -> bytes:
    """The image of the request: the first part of a multipart body, or the raw body."""
    cfg = state().config
    return fetching.request_image(cfg.max_prediction_image_bytes, cfg.max_image_side)


def _classify(project_id: str, published_name: str, store: bool, by_url: bool = False):
    cfg = state().config
    if by_url:
        url = fetching.body_url()

        def image() -> bytes:  # fetched only once the published iteration is known to exist
            return fetching.fetch_image(url, cfg.max_prediction_image_bytes, cfg.max_image_side)
    else:
        image = _image()
    result, types = flow.classify(
        state().backends, g.principal.account_id, project_id, published_name, image, store,
        request.args.get("application", ""),
    )
    return jsonify(serialize.image_prediction(result, types))


@bp.post("/<project_id>/classify/iterations/<published_name>/image")
def classify_image(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=True)


@bp.post("/<project_id>/classify/iterations/<published_name>/image/nostore")
def classify_image_with_no_store(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=False)


@bp.post("/<project_id>/classify/iterations/<published_name>/url")
def classify_image_url(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=True, by_url=True)


@bp.post("/<project_id>/classify/iterations/<published_name>/url/nostore")
def classify_image_url_with_no_store(project_id: str, published_name: str):
    return _classify(project_id, published_name, store=False, by_url=True)
