"""The training API root (`/customvision/<version>/training`): version and key handling, with
one nested blueprint per resource."""
from __future__ import annotations

import time

from flask import Blueprint, g, request

from loupe_gateway import signing, validation, versions
from loupe_gateway.api import domains, exports, image_metadata, image_tags, image_urls, images
from loupe_gateway.api import iterations, performance, predictions, projects, quicktest
from loupe_gateway.api import suggestions, tags
from loupe_gateway.app import state
from loupe_gateway.auth import TRAINING, HEADERS, Principal, unauthorized

bp = Blueprint("training", __name__, url_prefix=versions.TRAINING_PREFIX)

#: Views that also accept a signed URI (`?a=&exp=&sig=`) instead of the Training-Key header.
SIGNED_ENDPOINTS = {
    "training.images.image_data", "training.predictions.prediction_image",
    "training.exports.download_export",
}


@bp.url_value_preprocessor
def _pop_version(endpoint, values):
    g.api_version = (values or {}).pop("version", versions.TRAINING_VERSIONS[-1])
    validation.canonical_path_ids(values)


@bp.before_request
def _authenticate():
    if request.endpoint in SIGNED_ENDPOINTS and "sig" in request.args and not request.headers.get(
        HEADERS[TRAINING]
    ):
        account_id = request.args.get("a", "")
        if not signing.verify(
            state().config.url_signing_secret, request.path, account_id,
            request.args.get("exp", ""), request.args.get("sig", ""), time.time(),
        ):
            raise unauthorized()
        g.principal = Principal(account_id, TRAINING, "")
        return
    g.principal = state().keys.authenticate(TRAINING, request.headers.get(HEADERS[TRAINING]),
                                             request.remote_addr or "")


for child in (domains.bp, projects.bp, tags.bp, images.bp, iterations.bp):
    bp.register_blueprint(child)
# Image tagging and metadata, per-image performance, stored predictions, the Smart Labeler.
for child in (image_tags.bp, image_metadata.bp, performance.bp, predictions.bp, suggestions.bp):
    bp.register_blueprint(child)
# Server-side URL fetching (images/urls), quick test, iteration and project export.
for child in (image_urls.bp, quicktest.bp, exports.bp):
    bp.register_blueprint(child)
