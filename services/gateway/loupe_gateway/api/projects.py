"""Projects: create, list, get, update, delete."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from loupe_common import storage_keys
from loupe_common.errors import BadRequest
from loupe_gateway import domains, serialize, validation
from loupe_gateway.api.common import account, json_body, no_content
from loupe_gateway.app import state
from loupe_gateway.flows import projects as flow

bp = Blueprint("projects", __name__)


def _export_platforms(raw: str | None, domain_id: str) -> list[str]:
    platforms = [p.strip() for p in (raw or "").split(",") if p.strip()]
    by_upper = {p.upper(): p for p in domains.EXPORT_PLATFORMS}
    for platform in platforms:
        if platform.upper() not in by_upper or not domains.exportable(domain_id):
            raise BadRequest(
                f"export platform {platform!r} is not supported by this domain",
                "BadRequestProjectUnsupportedExportPlatform",
            )
    # Custom Vision's spelling ("ONNX", "DockerFile"), whatever the case asked.
    return [by_upper[p.upper()] for p in platforms]


@bp.post("/projects")
def create_project():
    args = request.args
    domain_id = domains.resolve(args.get("domainId"))
    project = state().backends.create_project(
        account(),
        name=args.get("name", ""),
        description=args.get("description", ""),
        domain_id=domain_id,
        classification_type=args.get("classificationType", ""),
        target_export_platforms=_export_platforms(args.get("targetExportPlatforms"), domain_id),
    )
    return jsonify(serialize.project(project))


@bp.put("/projects/<project_id>")
def import_project(project_id: str):
    """Loupe extension (Custom Vision has no PUT on a project): creates the project with the id
    in the path, from a Project JSON body, so an imported project keeps its id (`loupe
    import-azure`, docs/migrating.md). Idempotent: 201 when created, 200 with the project
    unchanged when the caller's account already holds it; 409 Conflict when another account
    holds that id."""
    body = json_body("Project")
    settings = body.get("settings") or {}
    if not isinstance(settings, dict):
        raise BadRequest("settings must be an object", "BadRequest")
    domain_id = domains.resolve(settings.get("domainId"))
    platforms = settings.get("targetExportPlatforms") or []
    if not isinstance(platforms, list):
        raise BadRequest("targetExportPlatforms must be a list", "BadRequest")
    project, existed = state().backends.import_project(
        account(), validation.parse_guid(project_id),
        name=str(body.get("name") or ""),
        description=str(body.get("description") or ""),
        domain_id=domain_id,
        classification_type=str(settings.get("classificationType") or ""),
        target_export_platforms=_export_platforms(",".join(map(str, platforms)), domain_id),
    )
    return jsonify(serialize.project(project)), 200 if existed else 201


@bp.get("/projects")
def list_projects():
    return jsonify([serialize.project(p) for p in state().backends.list_projects(account())])


@bp.get("/projects/<project_id>")
def get_project(project_id: str):
    return jsonify(serialize.project(state().backends.get_project(account(), project_id)))


@bp.patch("/projects/<project_id>")
def update_project(project_id: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a Project JSON object", "BadRequestRequiredParamIsNull")
    mask: list[str] = []
    fields: dict[str, str] = {}
    if body.get("name") is not None:
        mask.append("name")
        fields["name"] = str(body["name"])
    if body.get("description") is not None:
        mask.append("description")
        fields["description"] = str(body["description"])
    settings = body.get("settings") or {}
    if isinstance(settings, dict):
        if settings.get("domainId"):
            mask.append("domain_id")
            fields["domain_id"] = domains.resolve(str(settings["domainId"]))
        if settings.get("classificationType"):
            mask.append("classification_type")
            fields["classification_type"] = str(settings["classificationType"])
    backends = state().backends
    if not mask:
        return jsonify(serialize.project(backends.get_project(account(), project_id)))
    return jsonify(serialize.project(backends.update_project(account(), project_id, mask, **fields)))


@bp.delete("/projects/<project_id>")
def delete_project(project_id: str):
    flow.delete(state().backends, account(), project_id)
    return no_content()


@bp.get("/projects/<project_id>/artifacts")
def get_artifact(project_id: str):
    """A project's stored artifact by its path relative to the project (e.g.
    `<iterationId>/head.npz`, the trained head of an iteration)."""
    backends = state().backends
    backends.get_project(account(), project_id)  # the project must be the caller's
    path = request.args.get("path", "")
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise BadRequest(f"invalid artifact path {path!r}", "BadRequestInvalidArtifactUri")
    data = backends.get_object(storage_keys.artifact_key(project_id, path))
    return Response(data, mimetype="application/octet-stream")
