"""The Smart Labeler: suggested tags for images, and the untagged images with suggestions
(their page and their count per tag)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from loupe_common.errors import BadRequest
from loupe_gateway import serialize
from loupe_gateway.api.common import account, id_list, image_uri, json_body
from loupe_gateway.app import state
from loupe_gateway.flows import suggestions as flow

bp = Blueprint("suggestions", __name__)


def _cache() -> flow.SuggestionCache:
    return current_app.extensions["loupe.suggestions"]


def _iteration(project_id: str):
    return flow.trained_iteration(state().backends, account(), project_id,
                                  request.args.get("iterationId"))


@bp.post("/projects/<project_id>/tagsandregions/suggestions")
def suggest_tags_and_regions(project_id: str):
    it = _iteration(project_id)
    image_ids = id_list("imageIds")
    if not image_ids:
        raise BadRequest("imageIds is required", "BadRequestInvalidIds")
    suggestions, types = flow.suggest_for_images(
        state().backends, _cache(), account(), project_id, it, image_ids)
    return jsonify([
        serialize.suggested_tags(s.image.id, it, s.image.created, s.predictions, s.uncertainty,
                                 types)
        for s in suggestions
    ])


@bp.post("/projects/<project_id>/images/suggested")
def query_suggested_images(project_id: str):
    it = _iteration(project_id)
    body = json_body("SuggestedTagAndRegionQueryToken")
    query = flow.suggested_query(body)
    page = flow.query_suggested(state().backends, _cache(), account(), project_id, it, query,
                                state().config.suggestion_max_images)
    token = dict(body)
    token["continuation"] = page.continuation
    return jsonify({
        "token": token,
        "results": [
            serialize.suggested_image(s.image, it, page.domain, s.predictions, s.uncertainty,
                                      page.tag_types, image_uri)
            for s in page.suggestions
        ],
    })


@bp.post("/projects/<project_id>/images/suggested/count")
def query_suggested_image_count(project_id: str):
    it = _iteration(project_id)
    flt = flow.tag_filter(json_body("TagFilter"))
    return jsonify(flow.count_suggested(state().backends, _cache(), account(), project_id, it,
                                        flt, state().config.suggestion_max_images))
