"""The web UI in a real browser (Debian's chromium driven by Python playwright) against the
running system: keys → project → tags → upload → train → performance → publish → quick test →
stored predictions added to the training set → suggested tags confirmed for untagged images.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import pytest
import requests

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TAGS = ("tshirt", "trouser")  # Fashion-MNIST classes 0 and 1
PER_TAG = 6
TRAIN_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def browser():
    # Both are installed by `make deps` (requirements.txt and loupe_stack install): a missing
    # one is a failure, not a skip.
    from playwright import sync_api

    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is not installed (Debian package 'chromium')"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
    page.console_errors = console_errors
    yield page
    context.close()


@pytest.fixture()
def image_files(tmp_path) -> tuple[dict[str, list[Path]], Path, list[Path]]:
    """Six training PNGs per tag on disk, one held-out test image, and more held-out images
    (distinct from it) for the prediction API and the untagged uploads."""
    folder = tmp_path / "images"
    folder.mkdir()
    by_tag: dict[str, list[Path]] = {t: [] for t in TAGS}
    for i, (png, label) in enumerate(load_fashion_mnist("train", (0, 1), PER_TAG, seed=5)):
        path = folder / f"{TAGS[label]}-{i:02d}.png"
        path.write_bytes(png)
        by_tag[TAGS[label]].append(path)
    test_png, test_label = load_fashion_mnist("test", (0, 1), 1, seed=5)[0]
    test_path = folder / f"quicktest-{TAGS[test_label]}.png"
    test_path.write_bytes(test_png)
    seen = {test_png}
    extra: list[Path] = []
    for i, (png, label) in enumerate(load_fashion_mnist("test", (0, 1), 4, seed=11)):
        if png in seen:
            continue
        seen.add(png)
        path = folder / f"extra-{TAGS[label]}-{i:02d}.png"
        path.write_bytes(png)
        extra.append(path)
    assert len(extra) >= 4
    return by_tag, test_path, extra


def drive_ui(page, endpoint: str, env: dict[str, str], by_tag: dict[str, list[Path]],
             test_image: Path, screenshot: Path, extra: list[Path]) -> None:
    """The whole user journey through the UI; assertions wait (playwright's expect)."""
    from playwright.sync_api import expect

    tid = page.get_by_test_id
    page.goto(endpoint.rstrip("/") + "/")

    # first visit: the keys dialog opens by itself
    expect(tid("keys-dialog")).to_be_visible()
    tid("training-key-input").fill(env["LOUPE_TRAINING_KEY"])
    tid("prediction-key-input").fill(env["LOUPE_PREDICTION_KEY"])
    tid("prediction-resource-id-input").fill(env["LOUPE_PREDICTION_RESOURCE_ID"])
    tid("keys-save").click()
    expect(tid("keys-dialog")).to_be_hidden()
    expect(tid("view-projects")).to_be_visible()

    # project
    name = f"ui-{uuid.uuid4().hex[:8]}"
    tid("project-name-input").fill(name)
    tid("project-type-select").select_option("Multiclass")
    tid("create-project-button").click()
    expect(tid("project-title")).to_have_text(name)

    # tags
    for tag in by_tag:
        tid("tag-name-input").fill(tag)
        tid("create-tag-button").click()
        expect(tid("tags-list").locator(f'[data-tag-name="{tag}"]')).to_be_visible()

    # uploads through the file input, one tag at a time
    for tag, files in by_tag.items():
        tid("upload-tag-select").select_option(label=tag)
        tid("upload-file-input").set_input_files([str(f) for f in files])
        expect(tid("upload-selection")).to_contain_text(f"{len(files)} images selected")
        tid("upload-button").click()
        expect(tid("upload-summary")).to_be_visible()
        expect(tid("upload-summary-counts")).to_have_text(f"{len(files)} images: {len(files)} OK")
        expect(tid("upload-progress")).to_have_attribute("value", "100")
        row = tid("tags-list").locator(f'[data-tag-name="{tag}"]')
        expect(row.get_by_test_id("tag-count")).to_have_text(str(len(files)))
    total = sum(len(f) for f in by_tag.values())
    expect(tid("images-count")).to_have_text(f"({total})")
    expect(tid("image-tile")).to_have_count(total)
    # thumbnails are really loaded from their signed URLs
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=image-tile] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)

    # Advanced training (the hidden-layer head) with live progress
    tid("train-type").select_option("Advanced")
    tid("train-button").click()
    expect(tid("train-progress-wrap")).to_be_visible()
    expect(tid("train-progress-wrap")).to_have_attribute("data-status", re.compile("Completed|Failed"),
                                                          timeout=TRAIN_TIMEOUT_MS)
    expect(tid("train-error")).to_be_hidden()
    expect(tid("train-progress-wrap")).to_have_attribute("data-status", "Completed")
    expect(tid("train-status")).to_contain_text("Completed")
    expect(tid("iteration-status").first).to_have_text("Completed")
    expect(tid("iteration-training-type").first).to_have_text("Advanced")

    # performance, overall and per tag, re-queried when the threshold moves
    expect(tid("performance-table")).to_be_visible()
    expect(tid("performance-row")).to_have_count(len(by_tag))
    expect(tid("performance-overall")).to_contain_text("%")
    for tag in by_tag:
        expect(tid("performance-table").locator(f'[data-tag-name="{tag}"]')).to_contain_text("%")
    tid("threshold-slider").fill("0.8")
    expect(tid("threshold-value")).to_have_text("80%")
    expect(tid("performance")).to_have_attribute("data-threshold", "0.8")

    # publish, then a quick test by prediction
    tid("publish-name-input").fill("uitest")
    tid("publish-button").click()
    expect(tid("iteration-publish-name").first).to_have_text("uitest")
    expect(tid("quicktest-model-select")).to_have_value("uitest")
    tid("quicktest-file-input").set_input_files(str(test_image))
    expect(tid("quicktest-result")).to_be_visible()
    expect(tid("prediction-row")).to_have_count(len(by_tag))
    shown = tid("prediction-row").evaluate_all(
        "rows => rows.map(r => [r.dataset.tagName, Number(r.dataset.probability)])")
    assert sorted(t for t, _ in shown) == sorted(by_tag)
    assert abs(sum(p for _, p in shown) - 1.0) < 1e-3, shown
    assert shown == sorted(shown, key=lambda tp: -tp[1])

    improve_from_predictions(page, endpoint, env, extra[:2])
    label_untagged_with_suggestions(page, extra[2:4])

    page.screenshot(path=str(screenshot), full_page=True)
    expect(tid("error-alert")).to_be_hidden()

    # clean up through the UI: unpublish, delete the project
    tid("unpublish-button").click()
    expect(tid("iteration-publish-name").first).to_have_text("–")
    tid("delete-project-button").click()
    tid("delete-project-confirm-button").click()
    expect(tid("view-projects")).to_be_visible()
    expect(page.locator(f'[data-testid=project-row][data-project-name="{name}"]')).to_have_count(0)
    expect(tid("error-alert")).to_be_hidden()
    assert not page.console_errors, page.console_errors


def tag_count(page, tag: str) -> int:
    row = page.get_by_test_id("tags-list").locator(f'[data-tag-name="{tag}"]')
    return int(row.get_by_test_id("tag-count").inner_text())


def improve_from_predictions(page, endpoint: str, env: dict[str, str], images: list[Path]) -> None:
    """Images classified through the prediction API (stored) → Predictions → training set."""
    from playwright.sync_api import expect

    tid = page.get_by_test_id
    project_id = re.search(r"#/projects/([^/?#]+)", page.url).group(1)
    url = (f"{endpoint.rstrip('/')}/customvision/v3.0/prediction/{project_id}"
           "/classify/iterations/uitest/image")
    for image in images:
        resp = requests.post(url, data=image.read_bytes(), timeout=60, headers={
            "Prediction-Key": env["LOUPE_PREDICTION_KEY"], "Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
    # predictions are stored asynchronously: reload the section until they are all there
    # (the quick test's image was stored too)
    tid("stored-order-select").select_option("Newest")
    expect(tid("stored-grid")).to_have_attribute("data-order", "Newest")
    deadline = time.monotonic() + 20
    while True:
        tid("stored-refresh-button").click()
        expect(tid("stored-refresh-button")).to_be_enabled()
        if tid("stored-tile").count() >= len(images) + 1 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert tid("stored-tile").count() >= len(images) + 1
    expect(tid("stored-top-tag").first).to_contain_text("%")
    tile = tid("stored-tile").first
    added = tile.get_attribute("data-prediction-id")
    before = tag_count(page, TAGS[1])
    tile.get_by_test_id("stored-tag-select").select_option(label=TAGS[1])
    tile.get_by_test_id("stored-add-button").click()
    expect(tile.get_by_test_id("stored-status")).to_have_attribute("data-status", "OK")
    row = tid("tags-list").locator(f'[data-tag-name="{TAGS[1]}"]')
    expect(row.get_by_test_id("tag-count")).to_have_text(str(before + 1))
    # the other orders answer too, and a stored prediction can be deleted
    tid("stored-order-select").select_option("Suspicious")
    expect(tid("stored-grid")).to_have_attribute("data-order", "Suspicious")
    expect(tid("stored-grid")).to_have_attribute("data-state", "ready")
    expect(tid("stored-tile")).to_have_count(len(images) + 1)
    # the added prediction keeps its status across reloads
    expect(page.locator(f'[data-testid=stored-tile][data-prediction-id="{added}"]')
           .get_by_test_id("stored-status")).to_have_attribute("data-status", "OK")
    expect(page.locator(f'[data-testid=stored-tile][data-prediction-id="{added}"]')
           .get_by_test_id("stored-add-button")).to_be_disabled()
    last = tid("stored-tile").last
    gone = last.get_attribute("data-prediction-id")
    last.get_by_test_id("stored-delete-button").click()
    expect(page.locator(f'[data-testid=stored-tile][data-prediction-id="{gone}"]')).to_have_count(0)
    expect(tid("error-alert")).to_be_hidden()


def label_untagged_with_suggestions(page, images: list[Path]) -> None:
    """Untagged uploads → Suggested tags → confirm one → one fewer untagged image."""
    from playwright.sync_api import expect

    tid = page.get_by_test_id
    expect(tid("untagged-count")).to_have_attribute("data-count", "0")
    tid("upload-tag-select").select_option("untagged")
    tid("upload-file-input").set_input_files([str(f) for f in images])
    tid("upload-button").click()
    expect(tid("upload-summary-counts")).to_have_text(f"{len(images)} images: {len(images)} OK")
    expect(tid("untagged-count")).to_have_attribute("data-count", str(len(images)))
    tid("suggested-refresh-button").click()
    expect(tid("suggested-grid")).to_have_attribute("data-state", "ready")
    expect(tid("suggested-tile")).to_have_count(len(images))
    tile = tid("suggested-tile").first
    suggested = tile.get_attribute("data-suggested-tag")
    assert suggested in TAGS
    expect(tile.get_by_test_id("suggested-tag")).to_contain_text("%")
    before = tag_count(page, suggested)
    tile.get_by_test_id("suggested-confirm-button").click()
    expect(tid("untagged-count")).to_have_attribute("data-count", str(len(images) - 1))
    expect(tid("suggested-tile")).to_have_count(len(images) - 1)
    row = tid("tags-list").locator(f'[data-tag-name="{suggested}"]')
    expect(row.get_by_test_id("tag-count")).to_have_text(str(before + 1))
    expect(tid("error-alert")).to_be_hidden()


def test_web_ui_upload_train_publish_quick_test(live_env, page, image_files, tmp_path):
    by_tag, test_image, extra = image_files
    screenshot = Path(os.environ.get("LOUPE_UI_SCREENSHOT") or tmp_path / "web-ui.png")
    drive_ui(page, live_env["LOUPE_ENDPOINT"], live_env, by_tag, test_image, screenshot,
             extra)
    assert screenshot.stat().st_size > 10_000
