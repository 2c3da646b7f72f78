"""Helpers shared by the blueprints."""
from __future__ import annotations

import time

from flask import g, request

from loupe.v1 import metadata_pb2 as mpb
from loupe_gateway import signing
from loupe_gateway.app import state
from loupe_gateway.auth import Principal


def principal() -> Principal:
    return g.principal


def account() -> str:
    return g.principal.account_id


def image_path(project_id: str, image_id: str, variant: str) -> str:
    return (
        f"/customvision/{g.api_version}/training/projects/{project_id}/images/"
        f"{image_id}/{variant}"
    )


def image_uri(img: mpb.Image, variant: str) -> str:
    """An absolute, signed, time-limited URI of an image variant served by this gateway."""
    cfg = state().config
    path = image_path(img.project_id, img.id, variant)
    query = signing.signed_query(
        cfg.url_signing_secret, path, account(), time.time(), cfg.url_ttl_seconds
    )
    return f"{request.host_url.rstrip('/')}{path}?{query}"


def no_content():
    return "", 204
