"""The web UI: one static page (vanilla JS, no build step) over the public REST API.

The page talks to the same Custom Vision compatible endpoints as any SDK, with the keys the
user enters (kept in the browser's localStorage), so the UI holds no server-side state.
Register with `app.register_blueprint(ui.bp)`; the page is served at `/` and `/ui`, its
assets under `/ui/static/`.
"""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

from loupe_common import limits

bp = Blueprint(
    "ui", __name__, static_folder="static", template_folder="templates", url_prefix="",
    static_url_path="/ui/static",
)

_HEADERS = {
    "Cache-Control": "no-cache",
    # Everything the page needs is same-origin; no inline script or style.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob: http: https:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _upload_limits() -> dict[str, float]:
    """The gateway's configured upload limits, which the page splits and describes uploads by
    (Custom Vision's own on an app without a gateway configuration)."""
    loupe = current_app.extensions.get("loupe")
    batch, image_bytes = ((loupe.config.max_batch_images, loupe.config.max_training_image_bytes)
                          if loupe is not None else (limits.MAX_BATCH_IMAGES, limits.MAX_TRAINING_IMAGE_BYTES))
    return {"upload_batch": batch, "upload_image_mb": round(image_bytes / limits.MB, 1)}


@bp.get("/")
@bp.get("/ui")
def index():
    return render_template("index.html", **_upload_limits()), 200, _HEADERS
