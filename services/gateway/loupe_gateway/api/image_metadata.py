"""Image metadata: set key/value pairs on images."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from loupe_common.errors import BadRequest
from loupe_gateway import serialize, validation
from loupe_gateway.api.common import account, id_list
from loupe_gateway.app import state

bp = Blueprint("image_metadata", __name__)


@bp.post("/projects/<project_id>/images/metadata")
def update_image_metadata(project_id: str):
    image_ids = id_list("imageIds")
    if not image_ids:
        raise BadRequest("imageIds is required", "BadRequestInvalidIds")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object of strings", "BadRequestImageMetadataKey")
    metadata = validation.check_metadata(body)
    results = state().backends.update_image_metadata(
        account(), project_id, image_ids, metadata, validation.MAX_METADATA_KEYS
    )
    summary = serialize.image_metadata_update_summary(results)
    return jsonify(summary), 200 if summary["isBatchSuccessful"] else 207
