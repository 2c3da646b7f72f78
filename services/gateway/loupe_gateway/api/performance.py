"""Per-image performance of a trained iteration: the evaluated images with their held-out
predictions, and their count."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from loupe_gateway import serialize, validation
from loupe_gateway.api.common import account, image_uri, tag_id_list
from loupe_gateway.app import state
from loupe_gateway.flows import performance as flow

bp = Blueprint("performance", __name__)


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images")
def get_image_performances(project_id: str, iteration_id: str):
    args = request.args
    tag_ids = tag_id_list()
    take = validation.parse_take(args.get("take"))
    skip = validation.parse_skip(args.get("skip"))
    images, types = flow.image_performances(
        state().backends, account(), project_id, iteration_id, tag_ids,
        order_by=args.get("orderBy", ""), take=take, skip=skip,
    )
    return jsonify([
        serialize.image_performance(img, predictions, types, image_uri)
        for img, predictions in images
    ])


@bp.get("/projects/<project_id>/iterations/<iteration_id>/performance/images/count")
def get_image_performance_count(project_id: str, iteration_id: str):
    tag_ids = tag_id_list()
    return jsonify(flow.image_performance_count(
        state().backends, account(), project_id, iteration_id, tag_ids))
