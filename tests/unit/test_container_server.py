"""The exported container's server (loupe_model.container.app): routing, request parsing and
the Custom Vision response JSON, with no model, socket or file (no I/O)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from loupe_common import exports
from loupe_common.errors import BadRequest
from loupe_model import container
from loupe_model.container import app

pytestmark = pytest.mark.unit

IMAGE = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n\r\n\x00\xff"


@pytest.mark.parametrize(("path", "project", "name", "kind"), [
    ("/image", None, None, "image"),
    ("/url", None, None, "url"),
    ("/p1/image", "p1", None, "image"),
    ("/p1/image/nostore", "p1", None, "image"),
    ("/p1/url/nostore", "p1", None, "url"),
    ("/p1/classify/iterations/prod/image", "p1", "prod", "image"),
    ("/p1/classify/iterations/prod/image/nostore", "p1", "prod", "image"),
    ("/p1/classify/iterations/prod/url", "p1", "prod", "url"),
    ("/p1/detect/iterations/prod/url/nostore", "p1", "prod", "url"),
    ("/customvision/v3.0/Prediction/p1/classify/iterations/prod/image?application=x", "p1", "prod", "image"),
    ("/customvision/v3.1/prediction/p1/classify/iterations/prod/url/nostore", "p1", "prod", "url"),
    ("/image/", None, None, "image"),
])
def test_routes(path, project, name, kind):
    assert app.route("POST", path) == app.Route(kind, project, name)


def test_index_and_wrong_methods_and_unknown_paths():
    assert app.route("GET", "/") == app.Route("index")
    assert app.route("GET", "/?x=1").kind == "index"
    for method, path, status in [("POST", "/", 405), ("GET", "/image", 405), ("PUT", "/p/url", 405),
                                 ("POST", "/p/classify/iterations/image", 404),
                                 ("POST", "/classify/iterations/prod/image", 404),
                                 ("POST", "/p/q/r/image", 404), ("POST", "/images", 404),
                                 ("POST", "/IMAGE", 404)]:
        with pytest.raises(app.RequestError) as info:
            app.route(method, path)
        assert info.value.status == status, (method, path)


def _multipart(parts, boundary="XyZ123"):
    body = b""
    for headers, data in parts:
        body += b"--" + boundary.encode() + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    return f"multipart/form-data; boundary={boundary}", body + b"--" + boundary.encode() + b"--\r\n"


def test_multipart_image_data_is_read_as_bytes():
    # The SDK's part: no filename; curl -F's: a filename and a content type.
    for disposition in (b'Content-Disposition: form-data; name="imageData"',
                        b'Content-Disposition: form-data; name="imageData"; filename="a.jpg"\r\n'
                        b"Content-Type: image/jpeg"):
        ctype, body = _multipart([(b'Content-Disposition: form-data; name="other"', b"zzz"),
                                  (disposition, IMAGE)])
        assert app.image_bytes(ctype, body) == IMAGE
    ctype = 'multipart/form-data; boundary="q b"'
    body = b"--q b\r\nContent-Disposition: form-data; name=imageData\r\n\r\n" + IMAGE + b"\r\n--q b--"
    assert app.image_bytes(ctype, body) == IMAGE


def test_raw_bodies_and_refusals():
    assert app.image_bytes("application/octet-stream", IMAGE) == IMAGE
    assert app.image_bytes("", IMAGE) == IMAGE
    for ctype, body in [("application/octet-stream", b""),
                        _multipart([(b'Content-Disposition: form-data; name="file"', IMAGE)]),
                        ("multipart/form-data", IMAGE)]:
        with pytest.raises(app.RequestError) as info:
            app.image_bytes(ctype, body)
        assert (info.value.status, info.value.code) == (400, "BadRequestImageFormat")


def test_url_bodies():
    assert app.image_url(b'{"url": "http://127.0.0.1:8000/a.jpg"}') == "http://127.0.0.1:8000/a.jpg"
    assert app.image_url(b'{"Url": "https://example.com/a.png"}') == "https://example.com/a.png"
    for body in (b"", b"not json", b"[]", b'{"url": 3}', b'{"url": ""}', b'{"url": "file:///etc/passwd"}',
                 b"\xff\xfe"):
        with pytest.raises(app.RequestError) as info:
            app.image_url(body)
        assert (info.value.status, info.value.code) == (400, "BadRequestImageUrl")


def test_prediction_json_is_custom_visions():
    out = app.prediction([0.25, 0.7, 4e-9, 0.05000000049], ["a", "b", "c", "d"], ["ta", "tb", "tc", "td"],
                         "proj", "iter", "2026-01-02T03:04:05.000006", "pred-id")
    assert list(out) == ["id", "project", "iteration", "created", "predictions"]
    assert (out["id"], out["project"], out["iteration"]) == ("pred-id", "proj", "iter")
    # Highest first; rounded to 8 decimals; those under 1e-8 left out; no bounding box.
    assert out["predictions"] == [
        {"tagName": "b", "probability": 0.7, "tagId": "tb", "boundingBox": None},
        {"tagName": "a", "probability": 0.25, "tagId": "ta", "boundingBox": None},
        {"tagName": "d", "probability": 0.05, "tagId": "td", "boundingBox": None},
    ]
    assert json.loads(json.dumps(out)) == out
    assert "null" in json.dumps(out)


def test_created_is_naive_utc_iso():
    when = datetime(2026, 5, 6, 9, 8, 7, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert app.created_now(when) == "2026-05-06T07:08:07.123456"
    assert app.created_now(datetime(2026, 5, 6, 9, 8, 7)) == "2026-05-06T09:08:07.000000"
    assert datetime.fromisoformat(app.created_now()).tzinfo is None


def test_error_body():
    assert json.loads(app.error_body("BadRequestImageFormat", "nope")) == {
        "code": "BadRequestImageFormat", "message": "nope"}


def test_flavors():
    assert exports.flavor("DockerFile", None) == "Linux"
    assert exports.flavor("DockerFile", "arm") == "ARM"
    assert exports.flavor("DockerFile", "linux") == "Linux"
    assert exports.flavor("ONNX", "") == "" and exports.flavor("ONNX", "onnx12") == "ONNX12"
    for platform, raw in (("DockerFile", "Windows"), ("DockerFile", "ONNX12"), ("ONNX", "Linux"),
                          ("ONNX", "TensorFlowLite")):
        with pytest.raises(BadRequest) as info:
            exports.flavor(platform, raw)
        assert info.value.code == "BadRequestProjectUnsupportedExportPlatform"


def test_dockerfiles():
    linux, arm = container.dockerfile("Linux"), container.dockerfile("ARM")
    assert "\nFROM ${BASE}\n" in linux and "\nFROM --platform=linux/arm64 ${BASE}\n" in arm
    for text in (linux, arm):
        assert f"\nARG BASE=python:{container.PYTHON_TAG}\n" in text
        assert "{" not in text.replace("/{project}/", "").replace("${BASE}", "")  # placeholders filled
        assert 'CMD ["python3", "app.py"]' in text and "EXPOSE 80" in text
    with pytest.raises(ValueError):
        container.dockerfile("Windows")


def test_server_files_are_pinned_and_carry_loupes_preprocessing():
    files = container.server_files()
    reqs = [line for line in files["requirements.txt"].decode().splitlines()
            if line and not line.startswith("#")]
    assert reqs and all("==" in line for line in reqs)
    assert {line.split("==")[0] for line in reqs} >= {"numpy", "pillow", "onnxruntime"}
    import loupe_model.pngstrips
    import loupe_model.preprocess
    for name, module in (("preprocess.py", loupe_model.preprocess), ("pngstrips.py", loupe_model.pngstrips)):
        with open(module.__file__, "rb") as f:
            assert files[f"loupe_model/{name}"] == f.read()
