"""Image tags: tag images (a batch of image/tag links) and untag them."""
from __future__ import annotations

from flask import Blueprint, jsonify

from loupe_common.errors import BadRequest
from loupe_gateway import serialize, validation
from loupe_gateway.api.common import account, id_list, json_body, no_content, tag_id_list
from loupe_gateway.app import state

bp = Blueprint("image_tags", __name__)

#: Custom Vision's limits: tags one image may carry, image/tag links in one call.
MAX_TAGS_PER_IMAGE = 100
MAX_TAG_LINKS_PER_BATCH = 128


@bp.post("/projects/<project_id>/images/tags")
def create_image_tags(project_id: str):
    entries = json_body("ImageTagCreateBatch").get("tags") or []
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
    return jsonify(serialize.image_tag_create_summary(result))


@bp.delete("/projects/<project_id>/images/tags")
def delete_image_tags(project_id: str):
    image_ids = id_list("imageIds")
    tag_ids = tag_id_list()
    state().backends.delete_image_tags(account(), project_id, image_ids, tag_ids)
    return no_content()
