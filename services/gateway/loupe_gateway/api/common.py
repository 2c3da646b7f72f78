"""Helpers shared by the blueprints: the caller's account, the request's JSON body and id
lists, and the signed URIs of the bytes this gateway serves."""
from __future__ import annotations

import time

from flask import g, request

from loupe.v1 import metadata_pb2 as mpb
from loupe_common import limits
from loupe_common.errors import BadRequest
from loupe_gateway import signing, validation
from loupe_gateway.app import state
from loupe_gateway.auth import Principal


def principal() -> Principal:
    return g.principal


def account() -> str:
    return g.principal.account_id


def json_body(what: str) -> dict:
    """The request's JSON object (`what` names its Custom Vision model in the error)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a {what} JSON object", "BadRequestRequiredParamIsNull")
    return body


def id_list(name: str, limit: int = limits.MAX_BATCH_IMAGES,
            code: str = "BadRequestInvalidIds") -> list[str]:
    """The GUIDs of the comma-separated query parameter `name`, at most `limit` of them."""
    ids = validation.parse_guid_list(request.args.get(name), code)
    if len(ids) > limit:
        raise BadRequest(f"at most {limit} ids in {name}", "BadRequestExceededBatchSize")
    return ids


def tag_id_list(name: str = "tagIds") -> list[str]:
    """The tag GUIDs of a query parameter, at most Custom Vision's 20."""
    return id_list(name, limits.MAX_BATCH_TAGS, "BadRequestImageTags")


def training_path(rest: str) -> str:
    """The path of `rest` (e.g. "projects/…") under this request's training API version."""
    return f"/customvision/{g.api_version}/training/{rest}"


def image_path(project_id: str, image_id: str, variant: str) -> str:
    return training_path(f"projects/{project_id}/images/{image_id}/{variant}")


def signed_uri(path: str) -> str:
    """An absolute, signed, time-limited URI of `path` on this gateway, GET-able without a key
    by the caller's account (the views of training.SIGNED_ENDPOINTS accept it)."""
    cfg = state().config
    query = signing.signed_query(
        cfg.url_signing_secret, path, account(), time.time(), cfg.url_ttl_seconds
    )
    return f"{request.host_url.rstrip('/')}{path}?{query}"


def image_uri(img: mpb.Image, variant: str) -> str:
    """The signed URI of an image variant (serialize.UriFn)."""
    return signed_uri(image_path(img.project_id, img.id, variant))


def no_content():
    return "", 204
