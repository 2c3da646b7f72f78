"""The web UI: one static page (vanilla JS, no build step) over the public REST API.

The page talks to the same Custom Vision compatible endpoints as any SDK, with the keys the
user enters (kept in the browser's localStorage), so the UI holds no server-side state.
Register with `app.register_blueprint(ui.bp)`; the page is served at `/` and `/ui`, its
assets under `/ui/static/`.
"""
from __future__ import annotations

from flask import Blueprint, render_template

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


@bp.get("/")
@bp.get("/ui")
def index():
    return render_template("index.html"), 200, _HEADERS
