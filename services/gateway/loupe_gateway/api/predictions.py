"""Stored predictions (what the prediction API and quick test keep): query, delete, their
image bytes (the signed URIs of query results), and adding them to the training images."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from loupe_common.errors import BadRequest, NotFound
from loupe_gateway import serialize, validation
from loupe_gateway.api.common import (
    account, id_list, image_uri, json_body, no_content, signed_uri, training_path,
)
from loupe_gateway.app import state
from loupe_gateway.clients import VARIANTS
from loupe_gateway.flows import predictions as flow

bp = Blueprint("predictions", __name__)


def _uri(project_id: str, prediction_id: str):
    """variant -> the signed URI of the prediction's image (served by prediction_image)."""
    return lambda variant: signed_uri(
        training_path(f"projects/{project_id}/predictions/{prediction_id}/{variant}"))


@bp.post("/projects/<project_id>/predictions/query")
def query_predictions(project_id: str):
    token = json_body("PredictionQueryToken")
    page = flow.query(state().backends, flow.query_request(token, account(), project_id))
    next_token = dict(token)
    next_token["continuation"] = page.continuation or None
    return jsonify({
        "token": next_token,
        "results": [
            serialize.stored_prediction(p, page.domain, page.tag_types, _uri(p.project_id, p.id))
            for p in page.predictions
        ],
    })


@bp.delete("/projects/<project_id>/predictions")
def delete_prediction(project_id: str):
    ids = id_list("ids")
    if not ids:
        raise BadRequest("ids is required", "BadRequestPredictionIdsMissing")
    flow.delete(state().backends, account(), project_id, ids)
    return no_content()


@bp.get("/projects/<project_id>/predictions/<prediction_id>/<variant>")
def prediction_image(project_id: str, prediction_id: str, variant: str):
    if variant not in VARIANTS:
        raise NotFound("unknown image variant", "NotFound")
    data = flow.image(state().backends, account(), project_id, prediction_id, variant)
    response = Response(data.data, mimetype=data.content_type or "application/octet-stream")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.post("/projects/<project_id>/images/predictions")
def create_images_from_predictions(project_id: str):
    cfg = state().config
    body = json_body("ImageIdCreateBatch")
    batch, metadata = validation.parse_batch({**body, "images": body.get("images") or []},
                                             "ImageIdCreateBatch", cfg.max_batch_images,
                                             cfg.max_batch_tags)
    entries = [(validation.parse_guid(item.get("id")), tags) for item, tags in batch]
    summary, status = flow.add_to_training_set(
        state().backends, cfg, account(), project_id, entries, metadata, image_uri)
    return jsonify(summary), status
