"""Images by URL through the official SDK: upload (`create_images_from_urls`), classify
(`classify_image_url[_with_no_store]`) and quick test (`quick_test_image[_url]`), with the
images served by a local http.server on 127.0.0.1 (allowed in the test stack by
LOUPE_URL_FETCH_ALLOW=127.0.0.1/32); private addresses stay refused, say why, and leave
nothing stored. No traffic leaves the machine: refused addresses are never connected to."""
from __future__ import annotations

import http.server
import threading
import time
import uuid

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
)
from azure.cognitiveservices.vision.customvision.prediction.models import (
    CustomVisionErrorException as PredictionError,
)

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

PRIVATE_URLS = [
    "http://10.0.0.1/cat.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/cat.png",
    "http://0.0.0.0/cat.png",
]


class _Images(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path.startswith("/loop/"):
            n = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/loop/{n + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.server.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        body = body if body is not None else b"not found"
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture(scope="module")
def images():
    httpd = _Server(("127.0.0.1", 0), _Images)
    httpd.files, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _serve(server, name: str, data: bytes) -> str:
    server.files[f"/{name}"] = data
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def test_upload_classify_and_quick_test_by_url(clients, images, live_env):
    trainer, predictor, resource_id = clients
    project = trainer.create_project(f"urls-{uuid.uuid4().hex[:6]}")
    tags = [trainer.create_tag(project.id, name) for name in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), 8, seed=31)
    entries = [
        ImageUrlCreateEntry(url=_serve(images, f"train-{i}.png", img), tag_ids=[tags[label].id])
        for i, (img, label) in enumerate(data)
    ]
    summary = trainer.create_images_from_urls(project.id, ImageUrlCreateBatch(images=entries))
    assert [i.status for i in summary.images] == ["OK"] * len(entries)
    assert summary.is_batch_successful
    assert summary.images[0].source_url == entries[0].url
    assert sorted(t.image_count for t in trainer.get_tags(project.id)) == [8, 8]

    # A batch mixing good and refused URLs: per-image ErrorSource, 207, nothing stored for them.
    again = _serve(images, "again.png", data[0][0])
    mixed = trainer.create_images_from_urls(project.id, ImageUrlCreateBatch(
        images=[ImageUrlCreateEntry(url=u) for u in PRIVATE_URLS + [again]],
        tag_ids=[tags[0].id]))
    statuses = [i.status for i in mixed.images]
    assert statuses == ["ErrorSource"] * len(PRIVATE_URLS) + ["OKDuplicate"]
    assert not mixed.is_batch_successful
    assert trainer.get_image_count(project.id) == 16

    iteration = trainer.train_project(project.id)
    deadline = time.monotonic() + 180
    while iteration.status == "Training":
        assert time.monotonic() < deadline
        time.sleep(0.5)
        iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed"

    test = load_fashion_mnist("test", (0, 1), 3, seed=32)
    names = ("top", "trouser")
    # Quick test, before publishing: by URL and by bytes, with the latest or a given iteration.
    right = 0
    for i, (img, label) in enumerate(test):
        url = _serve(images, f"test-{i}.png", img)
        result = trainer.quick_test_image_url(project.id, url=url, store=False)
        assert result.iteration == iteration.id
        right += max(result.predictions, key=lambda p: p.probability).tag_name == names[label]
    assert right >= 4
    by_bytes = trainer.quick_test_image(project.id, test[0][0], iteration_id=iteration.id,
                                        store=False)
    assert len(by_bytes.predictions) == 2 and by_bytes.iteration == iteration.id
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.quick_test_image_url(project.id, url=PRIVATE_URLS[1])
    assert info.value.error.code == "BadRequestImageUrl"
    assert "link-local" in info.value.error.message

    trainer.publish_iteration(project.id, iteration.id, "urlprod", resource_id)
    url = _serve(images, "predict.png", test[0][0])
    stored = predictor.classify_image_url(project.id, "urlprod", url=url)
    nostore = predictor.classify_image_url_with_no_store(project.id, "urlprod", url=url)
    assert len(stored.predictions) == len(nostore.predictions) == 2
    assert stored.predictions[0].tag_name == nostore.predictions[0].tag_name
    for bad, why in [("http://10.0.0.1/cat.png", "private address"),
                     ("http://[::1]/cat.png", "loopback"),
                     # 10.0.0.1 in decimal (127.0.0.1 is allowed in the test stack)
                     ("http://167772161/cat.png", "private address"),
                     ("ftp://127.0.0.1/cat.png", "http or https"),
                     (f"http://127.0.0.1:{images.server_address[1]}/loop/0",
                      "too many redirects"),
                     (_serve(images, "not-an-image.png", b"hello"), "not a valid image")]:
        with pytest.raises(PredictionError) as perr:
            predictor.classify_image_url_with_no_store(project.id, "urlprod", url=bad)
        assert why in perr.value.error.message, perr.value.error.message
        expected = "BadRequestImageFormat" if why == "not a valid image" else "BadRequestImageUrl"
        assert perr.value.error.code == expected

    # Raw HTTP: a refused URL is a 400 with the code and the reason.
    resp = requests.post(
        f"{live_env['LOUPE_ENDPOINT']}/customvision/v3.0/prediction/{project.id}/classify/"
        "iterations/urlprod/url", json={"url": "http://192.168.0.1/a.png"},
        headers={"Prediction-Key": live_env["LOUPE_PREDICTION_KEY"]}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["code"] == "BadRequestImageUrl"
    assert "private address" in resp.json()["message"]
    # Property names match ignoring case, as on Azure: the portal's dialog shows {"Url": ...}.
    portal = requests.post(
        f"{live_env['LOUPE_ENDPOINT']}/customvision/v3.0/Prediction/{project.id}/classify/"
        "iterations/urlprod/url/nostore", json={"Url": url},
        headers={"Prediction-Key": live_env["LOUPE_PREDICTION_KEY"]}, timeout=30)
    assert portal.status_code == 200, portal.text
    assert [p["tagName"] for p in portal.json()["predictions"]] == \
        [p.tag_name for p in nostore.predictions]
    pascal = requests.post(
        f"{live_env['LOUPE_ENDPOINT']}/customvision/v3.3/training/projects/{project.id}/images/urls",
        json={"Images": [{"Url": _serve(images, "pascal.png", test[1][0])}],
              "TagIds": [tags[1].id]},
        headers={"Training-Key": live_env["LOUPE_TRAINING_KEY"]}, timeout=30)
    assert pascal.status_code == 200, pascal.text
    assert [i["status"] for i in pascal.json()["images"]] == ["OK"]
    assert pascal.json()["images"][0]["image"]["tags"][0]["tagId"] == tags[1].id

    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_project(project.id)


def test_refused_urls_leave_nothing_stored(clients):
    trainer, _, _ = clients
    project = trainer.create_project(f"urls-refused-{uuid.uuid4().hex[:6]}")
    tag = trainer.create_tag(project.id, "t")
    summary = trainer.create_images_from_urls(project.id, ImageUrlCreateBatch(
        images=[ImageUrlCreateEntry(url=u) for u in PRIVATE_URLS], tag_ids=[tag.id]))
    assert {i.status for i in summary.images} == {"ErrorSource"}
    assert [i.source_url for i in summary.images] == PRIVATE_URLS
    assert trainer.get_image_count(project.id) == 0
    assert trainer.get_tags(project.id)[0].image_count == 0
    trainer.delete_project(project.id)
