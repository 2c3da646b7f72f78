"""Images: upload (multipart/octet-stream and JSON files), list, count, delete, and the image
bytes behind the URIs in responses."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from loupe_common.errors import BadRequest, NotFound
from loupe_gateway import bodies, jsonbatch, metadata_filter, multipart, serialize, validation
from loupe_gateway.flows import images as image_flows
from loupe_gateway.flows import uploads
from loupe_gateway.api.common import account, image_uri, no_content
from loupe_gateway.app import state
from loupe_gateway.clients import VARIANTS

bp = Blueprint("images", __name__)


def _batch_tags() -> list[str]:
    return validation.parse_guid_list(request.args.get("tagIds"), "BadRequestImageTags")


def _body_entries(tag_ids: list[str]) -> list[uploads.Entry]:
    """The images of a multipart or raw body, streamed from the raw body: read once, only the
    images' bytes kept (the body's cap was checked before it was read: bodies.admit)."""
    cfg = state().config
    part_limit = cfg.max_training_image_bytes
    if isinstance(request.environ.get(bodies.REFUSAL), bodies.ImageTooLarge):
        # A raw image over the cap, refused unread (bodies.init_app): the batch's failed image.
        return [uploads.Entry("", None, request.content_length or part_limit + 1, list(tag_ids), True)]
    chunks = multipart.stream_chunks(request.stream.read)
    if multipart.is_multipart(request.content_type):
        limit = bodies.limit_for(cfg, request.endpoint, request.content_type)
        parts = multipart.parse_multipart(chunks, request.content_type or "", part_limit,
                                          body_limit=limit.bytes)
        if parts is None:
            raise limit.refusal()
        return [uploads.Entry(p.filename or p.name, p.data, p.size, list(tag_ids), p.too_large)
                for p in parts]
    body, too_large = multipart.read_body(chunks, part_limit)
    size = len(body) if not too_large else (request.content_length or part_limit + 1)
    return [uploads.Entry("", None if too_large else body, size, list(tag_ids), too_large)]


@bp.post("/projects/<project_id>/images")
def create_images_from_data(project_id: str):
    cfg = state().config
    tag_ids = _batch_tags()
    validation.check_batch(1, len(tag_ids), cfg.max_batch_images, cfg.max_batch_tags)
    entries = _body_entries(tag_ids)
    validation.check_batch(len(entries), len(tag_ids), cfg.max_batch_images, cfg.max_batch_tags)
    summary, status = uploads.upload(
        state().backends, cfg, account(), project_id, entries, image_uri
    )
    return jsonify(summary), status


@bp.post("/projects/<project_id>/images/files")
def create_images_from_files(project_id: str):
    cfg = state().config
    # Read once (its cap was checked before: bodies.admit); the images are decoded straight
    # from it and it is dropped before anything is stored.
    length = request.content_length  # waitress gives a chunked body's length once it is in
    body = (jsonbatch.read_exactly(request.stream.read, length) if length is not None
            else request.get_data(cache=False))
    parsed, images, marker = jsonbatch.parse(body, current_app.json.loads)
    del body
    batch, metadata = validation.parse_batch(parsed, "ImageFileCreateBatch",
                                             cfg.max_batch_images, cfg.max_batch_tags)
    entries = []
    for item, tags in batch:
        data = jsonbatch.contents(item.get("contents"), images, marker)
        entries.append(uploads.Entry(
            str(item.get("name") or ""), data, len(data), tags,
            len(data) > cfg.max_training_image_bytes, metadata=metadata,
        ))
    del images, batch, parsed
    summary, status = uploads.upload(
        state().backends, cfg, account(), project_id, entries, image_uri
    )
    return jsonify(summary), status


def _iteration_id() -> str:
    """The `iterationId` query parameter ("" for the workspace)."""
    return (request.args.get("iterationId") or "").strip()


def _filter(allowed: bool):
    """The parsed `$filter` (only the operations whose SDK sends one take it)."""
    if not allowed:
        return None
    return metadata_filter.parse(request.args.get("$filter"))


def _list(project_id: str, tagging_status: str, with_filter: bool = False):
    args = request.args
    page = state().backends.list_images(
        account(), project_id,
        tagging_status=tagging_status,
        tag_ids=validation.parse_guid_list(args.get("tagIds")),
        order_by=args.get("orderBy", ""),
        take=validation.parse_take(args.get("take")),
        skip=validation.parse_skip(args.get("skip")),
        iteration_id=_iteration_id(),
        metadata_filter=_filter(with_filter),
    )
    return jsonify([serialize.image(img, image_uri) for img in page.images])


def _count(project_id: str, tagging_status: str, with_filter: bool = False):
    page = state().backends.list_images(
        account(), project_id, tagging_status=tagging_status,
        tag_ids=validation.parse_guid_list(request.args.get("tagIds")), take=1,
        iteration_id=_iteration_id(), metadata_filter=_filter(with_filter),
    )
    return jsonify(page.total)


@bp.get("/projects/<project_id>/images")
def get_images(project_id: str):
    return _list(project_id, request.args.get("taggingStatus", ""), with_filter=True)


@bp.get("/projects/<project_id>/images/tagged")
def get_tagged_images(project_id: str):
    return _list(project_id, "Tagged")


@bp.get("/projects/<project_id>/images/untagged")
def get_untagged_images(project_id: str):
    return _list(project_id, "Untagged")


@bp.get("/projects/<project_id>/images/count")
def get_image_count(project_id: str):
    return _count(project_id, request.args.get("taggingStatus", ""), with_filter=True)


@bp.get("/projects/<project_id>/images/tagged/count")
def get_tagged_image_count(project_id: str):
    return _count(project_id, "Tagged")


@bp.get("/projects/<project_id>/images/untagged/count")
def get_untagged_image_count(project_id: str):
    return _count(project_id, "Untagged")


@bp.get("/projects/<project_id>/images/id")
def get_images_by_ids(project_id: str):
    ids = validation.parse_guid_list(request.args.get("imageIds"))
    if not ids:
        return jsonify([])
    if len(ids) > validation.MAX_TAKE:
        raise BadRequest(
            f"at most {validation.MAX_TAKE} image ids", "BadRequestExceededBatchSize"
        )
    page = state().backends.list_images(
        account(), project_id, image_ids=ids, take=len(ids), iteration_id=_iteration_id()
    )
    return jsonify([serialize.image(img, image_uri) for img in page.images])


@bp.delete("/projects/<project_id>/images")
def delete_images(project_id: str):
    ids = validation.parse_guid_list(request.args.get("imageIds"))
    if len(ids) > validation.MAX_TAKE:
        raise BadRequest(
            f"at most {validation.MAX_TAKE} image ids", "BadRequestExceededBatchSize"
        )
    all_images = validation.parse_bool(request.args.get("allImages"))
    image_flows.delete(state().backends, account(), project_id, ids, all_images and not ids)
    return no_content()


@bp.get("/projects/<project_id>/images/<image_id>/<variant>")
def image_data(project_id: str, image_id: str, variant: str):
    if variant not in VARIANTS:
        raise NotFound("unknown image variant", "NotFound")
    try:
        image_id = validation.parse_guid(image_id)
    except BadRequest:
        raise NotFound(f"image {image_id!r} not found", "NotFoundImage") from None
    backends = state().backends
    page = backends.list_images(account(), project_id, image_ids=[image_id], take=1)
    if not page.images:
        raise NotFound(f"image {image_id!r} not found", "NotFoundImage")
    img = page.images[0]
    data = backends.get_image(project_id, img.sha256, variant)
    response = Response(data.data, mimetype=data.content_type or img.content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
