"""The exported container (`…/export?platform=DockerFile`) through the official SDK (3.1.1).

The central check: the zip's server, installed from nothing but its own pinned requirements
in a fresh venv (pip from PyPI; pip's cache keeps reruns quick), answers an IoT-Edge-style
client and every Custom Vision container route with the probabilities Loupe's own classify
gives, within 1e-5.
"""
from __future__ import annotations

import http.server
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import requests
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials
from PIL import Image

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

TAGS = ("top", "trouser", "sneaker")
CLASSES = (0, 1, 7)
PUBLISH_NAME = "containerprod"
TOLERANCE = 1e-5
APP_FILES = {"app/app.py", "app/requirements.txt", "app/model.onnx", "app/labels.txt",
             "app/metadata_properties.json", "app/loupe_model/__init__.py",
             "app/loupe_model/preprocess.py", "app/loupe_model/pngstrips.py"}


def _wait(trainer, project_id, iteration):
    deadline = time.monotonic() + 180
    while iteration.status == "Training":
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
        iteration = trainer.get_iteration(project_id, iteration.id)
    assert iteration.status == "Completed", iteration.status
    return iteration


@pytest.fixture(scope="module")
def trained(clients):
    """A trained, published General (compact) project: (project, tags, iteration)."""
    trainer, _predictor, resource_id = clients
    domain = next(d for d in trainer.get_domains() if d.name == "General (compact)")
    project = trainer.create_project(f"container-{uuid.uuid4().hex[:6]}", domain_id=domain.id)
    iteration = None
    try:
        tags = [trainer.create_tag(project.id, name) for name in TAGS]
        data = load_fashion_mnist("train", CLASSES, 8, seed=51)
        entries = [ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=[tags[label].id])
                   for i, (img, label) in enumerate(data)]
        assert trainer.create_images_from_files(
            project.id, ImageFileCreateBatch(images=entries)).is_batch_successful
        iteration = _wait(trainer, project.id, trainer.train_project(project.id))
        assert iteration.exportable and "DockerFile" in iteration.exportable_to
        trainer.publish_iteration(project.id, iteration.id, PUBLISH_NAME, resource_id)
        yield project, tags, iteration
    finally:
        if iteration is not None:
            try:
                trainer.unpublish_iteration(project.id, iteration.id)
            except CustomVisionErrorException:
                pass
        trainer.delete_project(project.id)


def _export(trainer, project_id, iteration_id, flavor) -> bytes:
    export = trainer.export_iteration(project_id, iteration_id, "DockerFile", flavor=flavor)
    assert export.platform == "DockerFile"
    deadline = time.monotonic() + 120
    while export.status == "Exporting":
        assert time.monotonic() < deadline
        time.sleep(0.5)
        export = next(e for e in trainer.get_exports(project_id, iteration_id) if e.platform == "DockerFile")
    assert export.status == "Done" and export.download_uri and export.flavor == flavor
    resp = requests.get(export.download_uri, timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"] == "application/zip"
    return resp.content


def _images() -> list[tuple[str, bytes]]:
    """(name, bytes) of held-out images: PNGs as uploaded, and one as a 640x480 JPEG (the
    server decodes JPEGs with Loupe's DCT-scaled draft, as the service does)."""
    test = load_fashion_mnist("test", CLASSES, 2, seed=52)
    out = [(f"png{i}", img) for i, (img, _label) in enumerate(test)]
    big = Image.open(io.BytesIO(test[0][0])).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    out.append(("jpeg640", buf.getvalue()))
    return out


class _Images(http.server.BaseHTTPRequestHandler):
    images: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - http.server's name
        data = self.images.get(self.path.lstrip("/"))
        self.send_response(200 if data else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, format, *args):  # noqa: A002
        pass


@dataclass(frozen=True)
class Container:
    url: str  # where its server answers
    names: set[str]  # the zip's members
    folder: Path  # the zip, unpacked
    venv: Path  # the fresh venv the server runs from


@pytest.fixture(scope="module")
def container(clients, trained, tmp_path_factory):
    """The Linux export unpacked, its server running from a fresh venv on 127.0.0.1."""
    trainer = clients[0]
    project, _tags, iteration = trained
    blob = _export(trainer, project.id, iteration.id, "Linux")
    root = tmp_path_factory.mktemp("container")
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        names = set(zf.namelist())
        zf.extractall(root / "export")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    started = time.monotonic()
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         "--only-binary=:all:", "-r", str(root / "export" / "app" / "requirements.txt")],
        capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    print(f"\nthe container's requirements installed in {time.monotonic() - started:.1f} s")
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        # Nothing of Loupe's environment: the server runs on what the zip brings.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}
        proc = subprocess.Popen(
            [str(venv / "bin" / "python"), "app.py", "--host", "127.0.0.1", "--port", "0",
             "--ort-threads", "2"],
            cwd=root / "export" / "app", stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline, port = time.monotonic() + 120, None
        while port is None:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            found = re.search(r"serving on 127\.0\.0\.1:(\d+)", log_path.read_text())
            port = int(found.group(1)) if found else None
            time.sleep(0.2)
        yield Container(f"http://127.0.0.1:{port}", names, root / "export", venv)
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=20) == 0  # SIGTERM stops it cleanly
        finally:
            if proc.poll() is None:
                proc.kill()


def _by_tag(answer: dict) -> dict[str, float]:
    return {p["tagId"]: p["probability"] for p in answer["predictions"]}


def _assert_custom_vision_shape(answer: dict, project, iteration, tags) -> None:
    assert list(answer) == ["id", "project", "iteration", "created", "predictions"]
    uuid.UUID(answer["id"])
    assert (answer["project"], answer["iteration"]) == (project.id, iteration.id)
    assert datetime.fromisoformat(answer["created"]).tzinfo is None
    names = {t.id: t.name for t in tags}
    probs = [p["probability"] for p in answer["predictions"]]
    assert probs == sorted(probs, reverse=True)
    for p in answer["predictions"]:
        assert set(p) == {"tagName", "probability", "tagId", "boundingBox"}
        assert p["boundingBox"] is None and names[p["tagId"]] == p["tagName"]


def test_zip_members_and_dockerfile(container):
    dockerfile = (container.folder / "Dockerfile").read_text()
    assert {"Dockerfile", "README.md"} | APP_FILES <= container.names
    assert re.search(r"^ARG BASE=python:3\.11\.\d+-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", dockerfile, re.M)
    assert 'CMD ["python3", "app.py"]' in dockerfile


def test_container_answers_like_loupe(clients, trained, container):
    _trainer, predictor, _ = clients
    project, tags, iteration = trained
    url = container.url
    assert requests.get(f"{url}/", timeout=10).text == "CustomVision.ai model host harness"

    images = _images()
    _Images.images = {name: data for name, data in images}
    source = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Images)
    threading.Thread(target=source.serve_forever, daemon=True).start()
    sdk = CustomVisionPredictionClient(url, ApiKeyCredentials(in_headers={"Prediction-key": "unused"}))
    worst = 0.0
    try:
        for name, data in images:
            loupe = {p.tag_id: p.probability for p in predictor.classify_image(project.id, PUBLISH_NAME, data).predictions}
            assert set(loupe) == {t.id for t in tags}
            answers = {
                # What IoT Edge's cameraCapture module sends: the frame's bytes to /image.
                "raw /image": requests.post(f"{url}/image", data=data, timeout=30, headers={
                    "Content-Type": "application/octet-stream"}),
                "multipart alias": requests.post(
                    f"{url}/{project.id}/classify/iterations/{PUBLISH_NAME}/image/nostore",
                    files={"imageData": data}, timeout=30),
                "project alias": requests.post(f"{url}/{project.id}/image", data=data, timeout=30),
                "/url": requests.post(f"{url}/url", json={
                    "url": f"http://127.0.0.1:{source.server_address[1]}/{name}"}, timeout=30),
                "url alias": requests.post(
                    f"{url}/{project.id}/classify/iterations/{PUBLISH_NAME}/url", timeout=30,
                    json={"url": f"http://127.0.0.1:{source.server_address[1]}/{name}"}),
            }
            for route, resp in answers.items():
                assert resp.status_code == 200, (route, resp.text)
                assert resp.headers["Content-Type"] == "application/json"
                answer = resp.json()
                _assert_custom_vision_shape(answer, project, iteration, tags)
                got = _by_tag(answer)
                for tag_id, expected in loupe.items():
                    # Tags under 1e-8 are left out, as Custom Vision's container does.
                    diff = abs(got.get(tag_id, 0.0) - expected)
                    assert diff <= TOLERANCE, (name, route, tag_id, got.get(tag_id), expected)
                    worst = max(worst, diff)
            # The official prediction SDK, pointed at the container, parses its answer.
            parsed = sdk.classify_image(project.id, PUBLISH_NAME, data)
            assert parsed.project == project.id and parsed.iteration == iteration.id
            for p in parsed.predictions:
                assert abs(p.probability - loupe[p.tag_id]) <= TOLERANCE
    finally:
        source.shutdown()
        source.server_close()
    print(f"largest |container - Loupe| probability difference: {worst:.2e}")


def test_container_refusals(container):
    url = container.url
    bad = requests.post(f"{url}/image", data=b"not an image", timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "BadRequestImageFormat"
    big = requests.post(f"{url}/image", data=b"\0" * (4 * 1024 * 1024 + 1), timeout=30)
    assert big.status_code == 413 and big.json()["code"] == "BadRequestImageSizeBytes"
    no_url = requests.post(f"{url}/url", json={"address": "x"}, timeout=10)
    assert no_url.status_code == 400 and no_url.json()["code"] == "BadRequestImageUrl"
    assert requests.get(f"{url}/image", timeout=10).status_code == 405
    assert requests.post(f"{url}/nothing/here", data=b"x", timeout=10).status_code == 404
    # A refused body left unread is not taken for a next request: the connection closes.
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
                     + smuggled)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 404"), answer
    assert b"Connection: close" in answer
    # Still serving after all that.
    assert requests.get(f"{url}/", timeout=10).status_code == 200


def test_arm_flavor_and_bad_flavors(clients, trained, container):
    trainer = clients[0]
    project, _tags, iteration = trained
    with zipfile.ZipFile(io.BytesIO(_export(trainer, project.id, iteration.id, "ARM"))) as zf:
        assert {"Dockerfile", "README.md"} | APP_FILES <= set(zf.namelist())
        dockerfile = zf.read("Dockerfile").decode()
    assert re.search(r"^FROM --platform=linux/arm64 \$\{BASE\}$", dockerfile, re.M)
    listed = [e for e in trainer.get_exports(project.id, iteration.id) if e.platform == "DockerFile"]
    assert [(e.status, e.flavor) for e in listed] == [("Done", "ARM")]
    for flavor in ("Windows", "ONNX12", "TensorFlowLite"):
        with pytest.raises(CustomVisionErrorException) as info:
            trainer.export_iteration(project.id, iteration.id, "DockerFile", flavor=flavor)
        assert info.value.error.code == "BadRequestProjectUnsupportedExportPlatform"
        assert info.value.response.status_code == 400
    # The flavor the request names is built, whatever was exported before.
    _export(trainer, project.id, iteration.id, "Linux")


#: A stand-in for python:3.11-slim made from the cluster tooling's Debian base (no registry is
#: reachable here): Debian bookworm's Python is 3.11 too, with pip, and without Debian's
#: "externally managed" marker, as in the official image.
_PYTHON_BASE_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip \\
 && rm -rf /var/lib/apt/lists/* \\
 && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
"""
#: Run inside the built image: its server on a free port, one image posted to /image.
_IN_IMAGE = """\
import base64, json, sys, threading, urllib.request
sys.path.insert(0, "/app")
import app
server, port = app.create_server("/app", "127.0.0.1", 0)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{port}"
out = {"index": urllib.request.urlopen(base + "/", timeout=10).read().decode()}
request = urllib.request.Request(base + "/image", data=base64.b64decode(sys.argv[1]),
                                 headers={"Content-Type": "application/octet-stream"})
out["image"] = json.load(urllib.request.urlopen(request, timeout=60))
server.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_image_builds_with_the_cluster_image_builder(clients, trained, container, tmp_path):
    """The zip's Dockerfile, unchanged, built by the cluster tooling's buildah builder (when this
    machine has buildah and the tooling's Debian base), answers from inside the image."""
    import base64
    import hashlib
    import json
    import shutil

    from loupe_cluster import images as cluster_images

    base = f"{cluster_images.REGISTRY}/debian:{cluster_images.DEBIAN_SUITE}-{cluster_images.BASE_VERSION}"
    if shutil.which("buildah") is None or not cluster_images.Images.built(base):
        pytest.skip("no buildah, or no cluster base image (make k8s-up builds it)")
    _trainer, predictor, _ = clients
    project, _tags, iteration = trained
    builder = cluster_images.Images(tmp_path / "cache", tmp_path / "unused.sock")
    (tmp_path / "python-base").mkdir()
    (tmp_path / "python-base" / "Dockerfile").write_text(_PYTHON_BASE_DOCKERFILE)
    # Kept between runs (named by what went into it), as the tooling keeps its own images.
    python_base = builder.bud(
        f"{cluster_images.REGISTRY}/container-test-python:"
        f"{hashlib.sha256((_PYTHON_BASE_DOCKERFILE + base).encode()).hexdigest()[:12]}",
        tmp_path / "python-base" / "Dockerfile", tmp_path / "python-base", base)
    # No network in the build: the pinned wheels from a folder, as the tooling builds Loupe's.
    wheels = tmp_path / "wheels"
    subprocess.run([str(container.venv / "bin" / "python"), "-m", "pip", "download", "--quiet",
                    "--disable-pip-version-check", "--only-binary=:all:", "-d", str(wheels), "-r",
                    str(container.folder / "app" / "requirements.txt")], check=True, timeout=600)
    ref = f"{cluster_images.REGISTRY}/container-test-classifier:{uuid.uuid4().hex[:12]}"
    working = None
    try:
        started = time.monotonic()
        builder.bud(ref, container.folder / "Dockerfile", container.folder, python_base,
                    volumes=[f"{wheels}:/wheels:ro"],
                    build_args={"PIP_ARGS": "--no-index --find-links /wheels"})
        print(f"\nthe container image built in {time.monotonic() - started:.1f} s")
        config = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", ref], check=True,
                                           capture_output=True, text=True).stdout)["OCIv1"]["config"]
        assert config["User"] == "10001" and config["Cmd"] == ["python3", "app.py"]
        assert config["WorkingDir"] == "/app" and "80/tcp" in config["ExposedPorts"]
        working = subprocess.run(["buildah", "from", "--pull=never", ref], check=True,
                                 capture_output=True, text=True).stdout.strip()
        data = _images()[-1][1]
        ran = subprocess.run(["buildah", "run", "--isolation=chroot", "--network=host", "--workingdir",
                              "/app", working, "--", "python3", "-c", _IN_IMAGE,
                              base64.b64encode(data).decode()],
                             capture_output=True, text=True, timeout=180)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        out = json.loads(ran.stdout.split("RESULT ", 1)[1])
    finally:
        if working:
            subprocess.run(["buildah", "rm", working], capture_output=True)
        subprocess.run(["buildah", "rmi", "--force", ref], capture_output=True)
    assert out["index"] == "CustomVision.ai model host harness"
    assert (out["image"]["project"], out["image"]["iteration"]) == (project.id, iteration.id)
    loupe = {p.tag_id: p.probability for p in predictor.classify_image(project.id, PUBLISH_NAME, data).predictions}
    got = _by_tag(out["image"])
    assert all(abs(got.get(t, 0.0) - p) <= TOLERANCE for t, p in loupe.items()), (got, loupe)
