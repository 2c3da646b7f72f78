"""Upload bodies through the real gateway (issue 14): every body capped before it is read, the
key checked before the body is read, chunked bodies refused once past the cap, number-array
`contents` within the cap, and a full batch of 64 still stored. Raw sockets where what matters
is that the gateway answers before the client has sent the body."""
from __future__ import annotations

import io
import json
import select
import socket
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from loupe_common.limits import MAX_BATCH_IMAGES, MAX_PREDICTION_IMAGE_BYTES, MAX_TRAINING_IMAGE_BYTES

pytestmark = pytest.mark.e2e

TRAINING = "/customvision/v3.3/training"
GIB = 1024 ** 3


def _png(seed: int, side: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _connect(api) -> socket.socket:
    url = urlsplit(api.endpoint)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.settimeout(10)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """(status, headers, JSON body) of the one response on `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return status, headers, json.loads(body[:length] or b"{}")


def _headers_only(api, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], dict, float]:
    """Sends a POST's line and headers but none of its body; (status, headers, JSON, seconds
    until the answer)."""
    host = urlsplit(api.endpoint).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers.items()]
    with _connect(api) as sock:
        start = time.monotonic()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status, got, body = _read_response(sock)
        return status, got, body, time.monotonic() - start


def _count(api, pid: str) -> int:
    return api.train("GET", f"/projects/{pid}/images/count")


@pytest.fixture(scope="module")
def project(api):
    pid = api.new_project(f"uploads-{uuid.uuid4().hex[:6]}")["id"]
    yield pid
    api.train("DELETE", f"/projects/{pid}", expect=204)


MULTIPART = "multipart/form-data; boundary=loupeboundary"


@pytest.mark.parametrize("route, content_type, declared, code", [
    # a multipart batch: 64 images of 6 MB and 1 MB of headers at most
    ("images", MULTIPART, MAX_BATCH_IMAGES * MAX_TRAINING_IMAGE_BYTES + 1024 * 1024 + 1,
     "BadRequestExceededBatchSize"),
    ("images", MULTIPART, GIB, "BadRequestExceededBatchSize"),
    # an ImageFileCreateBatch: the base64 of 64 images of 6 MB, and 1 MB besides
    ("images/files", "application/json", 600 * 1024 * 1024, "BadRequestExceededBatchSize"),
    ("images/files", "application/json", GIB, "BadRequestExceededBatchSize"),
    # any other body
    ("images/urls", "application/json", 2 * 1024 * 1024, "BadRequest"),
])
def test_oversize_content_length_refused_before_the_body_is_sent(api, project, route, content_type,
                                                                 declared, code):
    status, headers, body, seconds = _headers_only(api, f"{TRAINING}/projects/{project}/{route}", {
        "Training-Key": api.training_key, "Content-Type": content_type, "Content-Length": str(declared)})
    assert status == 400 and body["code"] == code, body
    assert str(declared) in body["message"]
    assert headers.get("connection") == "close"  # the unread body is never taken as a request
    assert seconds < 5
    assert _count(api, project) == 0


@pytest.mark.parametrize("declared", [MAX_TRAINING_IMAGE_BYTES + 1, GIB])
def test_an_oversize_raw_image_is_the_batchs_failed_image_unread(api, project, declared):
    """A raw body to …/images is one image: over 6 MB it is answered as Custom Vision answers a
    batch whose image is too large (207, ErrorImageSize), before the body is sent."""
    status, headers, body, seconds = _headers_only(api, f"{TRAINING}/projects/{project}/images", {
        "Training-Key": api.training_key, "Content-Type": "application/octet-stream",
        "Content-Length": str(declared)})
    assert status == 207, body
    assert body["isBatchSuccessful"] is False
    assert [i["status"] for i in body["images"]] == ["ErrorImageSize"]
    assert headers.get("connection") == "close"
    assert seconds < 5
    assert _count(api, project) == 0


def test_an_oversize_raw_image_with_a_wrong_key_is_unauthorized(api, project):
    status, _, body, _ = _headers_only(api, f"{TRAINING}/projects/{project}/images", {
        "Training-Key": "not-a-key-" + uuid.uuid4().hex, "Content-Type": "application/octet-stream",
        "Content-Length": str(MAX_TRAINING_IMAGE_BYTES + 1)})
    assert status == 401 and body["code"] == "Unauthorized", body


def test_oversize_prediction_image_refused_before_the_body_is_sent(api, project):
    path = f"/customvision/v3.0/prediction/{project}/classify/iterations/none/image/nostore"
    status, _, body, _ = _headers_only(api, path, {
        "Prediction-Key": api.prediction_key, "Content-Type": "application/octet-stream",
        "Content-Length": str(MAX_PREDICTION_IMAGE_BYTES + 1)})
    assert status == 400 and body["code"] == "BadRequestImageSizeBytes", body


@pytest.mark.parametrize("declared", [300 * 1024 * 1024, 64 * 1024])
def test_a_wrong_key_is_refused_before_the_body_is_sent(api, project, declared):
    path = f"{TRAINING}/projects/{project}/images"
    for headers in ({"Training-Key": "not-a-key-" + uuid.uuid4().hex},
                    {"Training-Key": api.prediction_key},  # a key of the other kind
                    {}):  # no key
        status, got, body, seconds = _headers_only(api, path, {
            **headers, "Content-Type": MULTIPART, "Content-Length": str(declared)})
        assert status == 401 and body["code"] == "Unauthorized", body
        assert got.get("connection") == "close"
        assert seconds < 5
    assert _count(api, project) == 0


def test_a_good_key_and_declared_size_waits_for_the_body(api, project):
    """The control of the tests above: with a good key and a size within the cap the gateway
    reads the body (it answers nothing while the body has not come)."""
    path = f"{TRAINING}/projects/{project}/images"
    host = urlsplit(api.endpoint).netloc
    image = _png(1)
    part = (b"--loupeboundary\r\nContent-Disposition: form-data; name=\"imageData\"\r\n\r\n"
            + image + b"\r\n--loupeboundary--\r\n")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTraining-Key: {api.training_key}\r\n"
            f"Content-Type: {MULTIPART}\r\nContent-Length: {len(part)}\r\n\r\n").encode()
    with _connect(api) as sock:
        sock.sendall(head + part[:100])
        sock.settimeout(1.5)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        sock.settimeout(10)
        sock.sendall(part[100:])
        status, _, body, = _read_response(sock)
    assert status == 200 and body["images"][0]["status"] == "OK", body
    api.train("DELETE", f"/projects/{project}/images", params={"allImages": "true"}, expect=(200, 204))


def _chunked_until_answered(api, path: str, headers: dict[str, str], total: int) -> tuple[int, dict, int]:
    """Streams `total` bytes as a chunked body, 64 KB a chunk, stopping as soon as the gateway
    answers; (status, JSON body, bytes sent)."""
    host = urlsplit(api.endpoint).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    chunk = b"\xff" * 65536
    sent = 0
    with _connect(api) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answered = False
        while sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                answered = True  # the answer has come
                break
            assert writable, "the gateway neither reads the body nor answers"
            try:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                answered = True
                break
            sent += len(chunk)
        if not answered:
            sock.sendall(b"0\r\n\r\n")
        status, _, body = _read_response(sock)
    return status, body, sent


def test_an_oversize_chunked_body_is_refused_once_past_the_cap(api, project):
    # A raw body to …/images is one image: 6 MB at most; 64 MB are offered.
    status, body, sent = _chunked_until_answered(
        api, f"{TRAINING}/projects/{project}/images",
        {"Training-Key": api.training_key, "Content-Type": "application/octet-stream"}, 64 * 1024 * 1024)
    assert status == 207 and [i["status"] for i in body["images"]] == ["ErrorImageSize"], body
    assert sent < 32 * 1024 * 1024  # refused as it streamed, not at the end
    # One image to classify: 4 MB at most.
    status, body, _ = _chunked_until_answered(
        api, f"/customvision/v3.0/prediction/{project}/classify/iterations/none/image/nostore",
        {"Prediction-Key": api.prediction_key, "Content-Type": "application/octet-stream"}, 16 * 1024 * 1024)
    assert status == 400 and body["code"] == "BadRequestImageSizeBytes", body
    assert _count(api, project) == 0


def test_a_chunked_body_within_the_cap_is_stored(api, project):
    image = _png(2)
    resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images",
                         data=iter([image[:100], image[100:]]), timeout=60,  # a generator: chunked
                         headers={"Training-Key": api.training_key, "Content-Type": "application/octet-stream"})
    assert resp.status_code == 200 and resp.json()["images"][0]["status"] == "OK", resp.text
    assert _count(api, project) == 1
    api.train("DELETE", f"/projects/{project}/images", params={"allImages": "true"}, expect=(200, 204))


def test_number_array_contents(api, project):
    """`contents` as an array of numbers (some clients send bytes so): taken within the cap,
    stored as the same bytes as base64."""
    images = [_png(10 + i, side=96) for i in range(3)]
    body = {"images": [{"name": f"n{i}.png", "contents": list(data)} for i, data in enumerate(images)]}
    resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images/files", json=body,
                         headers={"Training-Key": api.training_key}, timeout=60)
    assert resp.status_code == 200 and resp.json()["isBatchSuccessful"], resp.text
    stored = resp.json()["images"]
    assert [i["status"] for i in stored] == ["OK"] * 3
    for entry, data in zip(stored, images):
        got = api.http.get(entry["image"]["originalImageUri"], timeout=30)
        assert got.status_code == 200 and got.content == data
    # Numbers over 255, or no numbers: refused, nothing stored.
    for bad in ([256] * 2000, [1, -1] * 1000, "not base64!" * 200):
        resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images/files",
                             json={"images": [{"name": "bad.png", "contents": bad}]},
                             headers={"Training-Key": api.training_key}, timeout=60)
        assert resp.status_code == 400 and resp.json()["code"] == "BadRequestImageStream", resp.text
    assert _count(api, project) == 3
    api.train("DELETE", f"/projects/{project}/images", params={"allImages": "true"}, expect=(200, 204))


def test_a_multipart_batch_of_64(api, project):
    images = [_png(100 + i) for i in range(MAX_BATCH_IMAGES)]
    files = [("imageData", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]
    resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images", files=files,
                         headers={"Training-Key": api.training_key}, timeout=120)
    assert resp.status_code == 200 and resp.json()["isBatchSuccessful"], resp.text[:500]
    assert len(resp.json()["images"]) == MAX_BATCH_IMAGES
    assert _count(api, project) == MAX_BATCH_IMAGES
    # One more image: the whole batch refused, nothing of it stored.
    files.append(("imageData", ("65.png", _png(999), "image/png")))
    resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images", files=files,
                         headers={"Training-Key": api.training_key}, timeout=120)
    assert resp.status_code == 400 and resp.json()["code"] == "BadRequestExceededBatchSize", resp.text
    assert _count(api, project) == MAX_BATCH_IMAGES
    api.train("DELETE", f"/projects/{project}/images", params={"allImages": "true"}, expect=(200, 204))


def test_a_malformed_multipart_body_is_refused_whole(api, project):
    good = _png(3)
    body = (b"--loupeboundary\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.png\"\r\n\r\n"
            + good + b"\r\n--loupeboundary\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n"
            + good[:50])  # no closing boundary
    resp = api.http.post(f"{api.endpoint}{TRAINING}/projects/{project}/images", data=body, timeout=60,
                         headers={"Training-Key": api.training_key, "Content-Type": MULTIPART})
    assert resp.status_code == 400 and resp.json()["code"] == "BadRequestImageStream", resp.text
    assert _count(api, project) == 0
