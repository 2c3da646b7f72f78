"""Tags: list, create, get, update, delete."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from loupe_gateway import serialize, validation
from loupe_gateway.api.common import account, json_body, no_content
from loupe_gateway.app import state

bp = Blueprint("tags", __name__)


@bp.get("/projects/<project_id>/tags")
def list_tags(project_id: str):
    iteration_id = request.args.get("iterationId")
    if iteration_id:
        tags = state().backends.list_tags_at(account(), project_id, iteration_id)
    else:
        tags = state().backends.list_tags(account(), project_id)
    return jsonify([serialize.tag(t) for t in tags])


@bp.post("/projects/<project_id>/tags")
def create_tag(project_id: str):
    args = request.args
    tag = state().backends.create_tag(
        account(), project_id, name=args.get("name", ""),
        description=args.get("description", ""), type=args.get("type", ""),
    )
    return jsonify(serialize.tag(tag))


@bp.put("/projects/<project_id>/tags/<tag_id>")
def import_tag(project_id: str, tag_id: str):
    """Loupe extension: creates the tag with the id in the path, from a Tag JSON body (name,
    description, type), so an imported tag keeps its id. Idempotent: 201 when created, 200 with
    the tag unchanged when the project already has it; 409 Conflict when another project has
    that id."""
    body = json_body("Tag")
    tag, existed = state().backends.import_tag(
        account(), project_id, validation.parse_guid(tag_id),
        name=str(body.get("name") or ""), description=str(body.get("description") or ""),
        type=str(body.get("type") or ""),
    )
    return jsonify(serialize.tag(tag)), 200 if existed else 201


@bp.get("/projects/<project_id>/tags/<tag_id>")
def get_tag(project_id: str, tag_id: str):
    iteration_id = request.args.get("iterationId")
    if iteration_id:
        tag = state().backends.get_tag_at(account(), project_id, tag_id, iteration_id)
    else:
        tag = state().backends.get_tag(account(), project_id, tag_id)
    return jsonify(serialize.tag(tag))


@bp.patch("/projects/<project_id>/tags/<tag_id>")
def update_tag(project_id: str, tag_id: str):
    body = json_body("Tag")
    mask, fields = [], {}
    for key in ("name", "description", "type"):
        if body.get(key) is not None:
            mask.append(key)
            fields[key] = str(body[key])
    backends = state().backends
    if not mask:
        return jsonify(serialize.tag(backends.get_tag(account(), project_id, tag_id)))
    return jsonify(serialize.tag(backends.update_tag(account(), project_id, tag_id, mask, **fields)))


@bp.delete("/projects/<project_id>/tags/<tag_id>")
def delete_tag(project_id: str, tag_id: str):
    state().backends.delete_tag(account(), project_id, tag_id)
    return no_content()
