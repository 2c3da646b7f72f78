"""Exports: iteration exports (`…/iterations/{id}/export`, ONNX and DockerFile) and project export / import
(`…/projects/{id}/export` token, `POST /projects/import`).

Iteration exports are built synchronously by a trainer (ExportIteration, a few seconds) and kept
in storage next to a status record (loupe_common.exports); the listing reads those records, so
a POST that returned Done is always listed as Done. The download URI is a signed gateway URL.

A project export token is an HMAC-signed reference to a manifest stored with the source project
(`exports/{project}/project-{id}.json`: settings, tags, images by hash with their tags and
metadata). Import copies the image bytes from the source project's storage, so a token is good
while its source project exists (and for TOKEN_TTL_SECONDS), in the same account only.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, Response, jsonify, request

from loupe.v1 import metadata_pb2 as mpb
from loupe_common import exports, limits, storage_keys
from loupe_common.errors import BadRequest, Conflict, Internal, LoupeError, NotFound
from loupe_common.timeutil import utcnow
from loupe_gateway import domains, serialize, signing
from loupe_gateway.api.common import account, signed_uri, training_path
from loupe_gateway.app import state

log = logging.getLogger(__name__)
bp = Blueprint("exports", __name__)

#: Custom Vision's ExportPlatform values (others are not platforms at all).
KNOWN_PLATFORMS = ("CoreML", "TensorFlow", "DockerFile", "ONNX", "VAIDK", "OpenVino")
#: How long a project export token can be imported.
TOKEN_TTL_SECONDS = 7 * 24 * 3600
MANIFEST_FORMAT = "loupe-project-export"
_PAGE = 256
_COPY_THREADS = 8


# --- iteration export ----------------------------------------------------------------------------


def _export_json(project_id: str, iteration_id: str, record: dict) -> dict:
    platform = record.get("platform") or "ONNX"
    uri = None
    if record.get("status") == exports.DONE:
        uri = signed_uri(training_path(
            f"projects/{project_id}/iterations/{iteration_id}/export/{platform}/download"))
    return {
        "platform": platform,
        "status": record.get("status"),
        "downloadUri": uri,
        "flavor": record.get("flavor") or None,
        "newerVersionAvailable": False,
    }


def _read_record(project_id: str, iteration_id: str, platform: str) -> dict | None:
    """The export's record; one left Exporting past LOUPE_EXPORT_TIMEOUT_S reads as Failed."""
    try:
        key = storage_keys.export_record_key(project_id, iteration_id, platform)
        data = state().backends.get_object(key)
    except NotFound:
        return None
    return exports.current(exports.parse_record(data), utcnow(), state().config.export_timeout_s)


def _platform(raw: str | None) -> str:
    if not raw:
        raise BadRequest("platform is required", "BadRequestRequiredParamIsNull")
    by_lower = {p.lower(): p for p in KNOWN_PLATFORMS}
    platform = by_lower.get(raw.lower(), raw)
    if platform not in exports.PLATFORMS:
        raise BadRequest(
            f"export platform {raw!r} is not supported; supported: {', '.join(exports.PLATFORMS)}",
            "BadRequestProjectUnsupportedExportPlatform",
        )
    return platform


@bp.post("/projects/<project_id>/iterations/<iteration_id>/export")
def export_iteration(project_id: str, iteration_id: str):
    platform = _platform(request.args.get("platform"))
    flavor = exports.flavor(platform, request.args.get("flavor"))
    backends = state().backends
    it = backends.get_iteration(account(), project_id, iteration_id)
    if it.status == "Training":
        raise Conflict(f"{it.name} is still training", "BadRequestExportWhileTraining")
    if it.status != "Completed":
        raise Conflict(f"{it.name} is {it.status}", "BadRequestIterationIsNotTrained")
    if not domains.exportable(it.domain_id):
        # Custom Vision exports compact domains only; it answers with the platform code too.
        raise BadRequest(
            f"iteration {it.name} was trained on a domain that cannot be exported; train it "
            "on General (compact)", "BadRequestProjectUnsupportedExportPlatform",
        )
    existing = _read_record(project_id, iteration_id, platform)
    if existing and existing["status"] == exports.DONE and (existing.get("flavor") or "") == flavor:
        return jsonify(_export_json(project_id, iteration_id, existing))
    if existing and existing["status"] == exports.EXPORTING:
        raise Conflict(f"{it.name} is being exported", "BadRequestExportAlreadyInProgress")
    record_key = storage_keys.export_record_key(project_id, iteration_id, platform)
    backends.put_object(record_key, exports.record(platform, flavor, exports.EXPORTING),
                        "application/json")
    try:
        out = backends.export_iteration(project_id, iteration_id, it.artifact_key, platform, flavor)
    except LoupeError as err:
        # The trainer writes Failed itself when it got the call; a trainer that never answered
        # must not leave "Exporting" behind (it would refuse every retry).
        try:
            backends.put_object(record_key, exports.record(
                platform, flavor, exports.FAILED, message=err.message), "application/json")
        except LoupeError as put_err:
            log.warning("export record of %s left Exporting: %r", iteration_id, put_err)
        raise
    record = {"platform": platform, "flavor": flavor, "status": exports.DONE,
              "sizeBytes": out.size_bytes}
    return jsonify(_export_json(project_id, iteration_id, record))


@bp.get("/projects/<project_id>/iterations/<iteration_id>/export")
def get_exports(project_id: str, iteration_id: str):
    state().backends.get_iteration(account(), project_id, iteration_id)
    out = []
    for platform in exports.PLATFORMS:
        record = _read_record(project_id, iteration_id, platform)
        if record is not None:
            record["platform"] = platform
            out.append(_export_json(project_id, iteration_id, record))
    return jsonify(out)


@bp.get("/projects/<project_id>/iterations/<iteration_id>/export/<platform>/download")
def download_export(project_id: str, iteration_id: str, platform: str):
    if platform not in exports.PLATFORMS:
        raise NotFound(f"no {platform} export", "NotFound")
    backends = state().backends
    backends.get_iteration(account(), project_id, iteration_id)
    record = _read_record(project_id, iteration_id, platform)
    if record is None or record["status"] != exports.DONE:
        raise NotFound(f"no finished {platform} export of this iteration", "NotFound")
    data = backends.get_object(storage_keys.export_zip_key(project_id, iteration_id, platform))
    return Response(data, mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{iteration_id}.{platform.lower()}.zip"',
    })


# --- project export / import ---------------------------------------------------------------------


def _all_images(project_id: str) -> list[mpb.Image]:
    backends, images, skip = state().backends, [], 0
    while True:
        page = backends.list_images(account(), project_id, order_by="Oldest", take=_PAGE, skip=skip)
        images.extend(page.images)
        skip += len(page.images)
        if not page.images or skip >= page.total:
            return images


def _token_signature(secret: str, account_id: str, key: str, exp: int) -> str:
    return signing.signature(secret, f"project-export:{key}", account_id, exp)


def make_token(secret: str, account_id: str, key: str, exp: int) -> str:
    """An opaque token: base64url(JSON {a, k, exp}).signature."""
    payload = json.dumps({"a": account_id, "k": key, "exp": exp}, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{body}.{_token_signature(secret, account_id, key, exp)}"


def read_token(secret: str, token: str, account_id: str, now: float) -> str:
    """The manifest key of a valid token of this account.

    Raises:
        BadRequest: BadRequestInvalidImportToken (malformed, forged, expired, other account).
    """
    invalid = BadRequest("the import token is not valid", "BadRequestInvalidImportToken")
    body, _, sig = (token or "").partition(".")
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        owner, key, exp = str(payload["a"]), str(payload["k"]), int(payload["exp"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid from None
    if not hmac.compare_digest(_token_signature(secret, owner, key, exp), sig):
        raise invalid
    if owner != account_id or exp < now or not key.startswith(storage_keys.EXPORTS):
        raise invalid
    return key


@bp.get("/projects/<project_id>/export")
def export_project(project_id: str):
    backends, cfg = state().backends, state().config
    project = backends.get_project(account(), project_id)
    tags = backends.list_tags(account(), project_id)
    images = _all_images(project_id)
    iterations = backends.list_iterations(account(), project_id)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "account": account(),
        "project": {
            "id": project.id, "name": project.name, "description": project.description,
            "domainId": project.domain_id, "classificationType": project.classification_type,
            "targetExportPlatforms": list(project.target_export_platforms),
        },
        "tags": [{"id": t.id, "name": t.name, "description": t.description, "type": t.type}
                 for t in tags],
        "images": [{
            "sha256": img.sha256, "width": img.width, "height": img.height,
            "contentType": img.content_type, "sizeBytes": img.size_bytes,
            "tagIds": [t.tag_id for t in img.tags], "metadata": dict(img.metadata),
        } for img in images],
    }
    key = storage_keys.project_manifest_key(project_id, str(uuid.uuid4()))
    backends.put_object(key, json.dumps(manifest).encode(), "application/json")
    exp = int(time.time()) + TOKEN_TTL_SECONDS
    return jsonify({
        "iterationCount": len(iterations),
        "imageCount": len(images),
        "tagCount": len(tags),
        "regionCount": 0,
        # A rough estimate (not measured): 0.5 s for the project and tags, 20 ms per image copied.
        "estimatedImportTimeInMS": 500 + 20 * len(images),
        "token": make_token(cfg.url_signing_secret, account(), key, exp),
    })


@bp.post("/projects/import")
def import_project():
    cfg, backends = state().config, state().backends
    token = request.args.get("token")
    if not token:
        raise BadRequest("token is required", "BadRequestRequiredParamIsNull")
    key = read_token(cfg.url_signing_secret, token, account(), time.time())
    try:
        manifest = json.loads(backends.get_object(key))
    except NotFound:
        raise BadRequest("the exported project no longer exists",
                         "BadRequestInvalidImportToken") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("account") != account():
        raise BadRequest("the import token is not valid", "BadRequestInvalidImportToken")
    source = manifest["project"]
    project = backends.create_project(
        account(), name=request.args.get("name") or source["name"],
        description=source["description"], domain_id=source["domainId"],
        classification_type=source["classificationType"],
        target_export_platforms=source["targetExportPlatforms"],
    )
    try:
        _fill(project.id, source["id"], manifest)
    except Exception as exc:
        # A half-imported project is worse than none: remove it, with the bytes already copied.
        try:
            deleted = backends.delete_project(account(), project.id)
            backends.delete_image_data(project.id, all=True)
            log.info("half-imported project %s removed (%d images)", project.id,
                     len(deleted.image_sha256))
        except LoupeError as err:
            log.error("half-imported project %s not removed: %r", project.id, err)
        if isinstance(exc, LoupeError):
            raise
        log.exception("import into %s failed", project.id)
        raise Internal(f"import failed: {exc}", "ErrorProjectImportRequestFailed") from None
    return jsonify(serialize.project(backends.get_project(account(), project.id)))


def _fill(project_id: str, source_id: str, manifest: dict) -> None:
    """Copies tags, image bytes, images with their tags and metadata into a new project."""
    backends = state().backends
    tag_map = {}
    for tag in manifest["tags"]:
        tag_map[tag["id"]] = backends.create_tag(
            account(), project_id, tag["name"], tag["description"], tag["type"]).id

    def copy(sha: str) -> None:
        original = backends.get_image(source_id, sha, "original")
        backends.put_image(project_id, original.data, original.content_type)

    images = manifest["images"]
    with ThreadPoolExecutor(max_workers=_COPY_THREADS, thread_name_prefix="import") as pool:
        list(pool.map(copy, sorted({img["sha256"] for img in images})))
    for start in range(0, len(images), limits.MAX_BATCH_IMAGES):  # Custom Vision's batch size
        backends.add_images(account(), project_id, [
            mpb.NewImage(
                sha256=img["sha256"], width=img["width"], height=img["height"],
                content_type=img["contentType"], size_bytes=img["sizeBytes"],
                tag_ids=[tag_map[t] for t in img["tagIds"] if t in tag_map],
                metadata=img.get("metadata") or {},
            )
            for img in images[start:start + limits.MAX_BATCH_IMAGES]
        ])
