"""The web UI blueprint on a bare Flask app: the page and its static files are served."""
from __future__ import annotations

import re

import pytest
from flask import Flask

from loupe_common.config import load
from loupe_gateway import ui
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig

pytestmark = pytest.mark.unit


@pytest.fixture()
def client():
    app = Flask(__name__, static_folder=None)
    app.register_blueprint(ui.bp)
    return app.test_client()


@pytest.mark.parametrize("path", ["/", "/ui"])
def test_page_references_its_assets(client, path):
    resp = client.get(path)
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    assert '<script src="/ui/static/app.js"' in html
    assert 'href="/ui/static/app.css"' in html
    # the page tells the user where the keys are
    assert ".loupe/env" in html
    # no resource outside the gateway (the page must work without internet)
    assert not re.search(r"""(src|href)=["']https?://""", html)


def test_static_files_are_served(client):
    js = client.get("/ui/static/app.js")
    assert js.status_code == 200
    assert "javascript" in js.mimetype
    assert b"/customvision/v3.3/training" in js.data
    css = client.get("/ui/static/app.css")
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    js.close()
    css.close()


def test_interactive_elements_have_test_ids(client):
    html = client.get("/").get_data(as_text=True)
    for tag in re.findall(r"<(?:button|input|select)\b[^>]*>", html):
        assert "data-testid=" in tag, tag
    testids = re.findall(r'data-testid="([^"]+)"', html)
    assert len(testids) == len(set(testids)), "duplicate data-testid in the page"
    for needed in ("keys-button", "error-alert", "train-button", "train-type", "train-progress",
                   "threshold-slider", "publish-button", "quicktest-file-input",
                   "upload-file-input", "upload-progress"):
        assert needed in testids


def test_feedback_sections_are_in_the_page(client):
    """Predictions (stored, added to the training set) and Suggested tags (Smart Labeler)."""
    html = client.get("/").get_data(as_text=True)
    testids = re.findall(r'data-testid="([^"]+)"', html)
    assert len(testids) == len(set(testids)), "duplicate data-testid in the page"
    for needed in ("stored-predictions", "stored-order-select", "stored-refresh-button",
                   "stored-grid", "stored-more-button", "suggested", "suggested-refresh-button",
                   "suggested-threshold-input", "suggested-sort-select", "suggested-grid",
                   "suggested-more-button", "untagged-count"):
        assert needed in testids, needed
    order = re.search(r'<select id="stored-order".*?</select>', html, re.S).group(0)
    assert re.findall(r'value="([^"]+)"', order) == ["Newest", "Oldest", "Suspicious"]
    sort = re.search(r'<select id="suggested-sort".*?</select>', html, re.S).group(0)
    assert sorted(re.findall(r'value="([^"]+)"', sort)) == ["UncertaintyAscending",
                                                            "UncertaintyDescending"]
    # no inline script or style: the CSP forbids them
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html


def test_script_calls_the_feedback_endpoints(client):
    js = client.get("/ui/static/app.js")
    text = js.get_data(as_text=True)
    js.close()
    for fragment in ("/predictions/query", "/images/predictions", "/images/suggested",
                     "/images/tags", "stored-add-button", "stored-delete-button",
                     "suggested-confirm-button", "stored-tag-select", "suggested-tag-select"):
        assert fragment in text, fragment
    # every data-testid the script creates is distinct from the page's own
    html = client.get("/").get_data(as_text=True)
    page_ids = set(re.findall(r'data-testid="([^"]+)"', html))
    script_ids = set(re.findall(r'"data-testid": "([^"]+)"', text))
    assert script_ids and not (script_ids & page_ids), script_ids & page_ids


def test_the_page_carries_the_gateways_upload_limits(client, gateway_env):
    # app.js splits uploads by data-batch: Custom Vision's limit on a bare app, else the
    # gateway's configured one.
    html = client.get("/").get_data(as_text=True)
    assert 'data-batch="64"' in html and "up to 6 MB each. Sent in batches of 64." in html
    config = load(GatewayConfig, {**gateway_env, "LOUPE_MAX_BATCH_IMAGES": "10",
                                  "LOUPE_MAX_TRAINING_IMAGE_BYTES": str(3 * 1024 * 1024 // 2)})
    html = create_app(config).test_client().get("/").get_data(as_text=True)
    assert 'data-batch="10"' in html and "up to 1.5 MB each. Sent in batches of 10." in html
    js = client.get("/ui/static/app.js")
    assert b"dataset.batch" in js.data and not re.search(rb"UPLOAD_BATCH = \d", js.data)
    js.close()
