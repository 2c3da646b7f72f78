"""The OpenAPI document: generated from the app's routes, no drift either way, a valid shape,
and a /docs page that needs nothing from outside."""
from __future__ import annotations

import re

import pytest

from loupe_common.config import load
from loupe_gateway import openapi
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.openapi.spec import OPERATIONS, SCHEMAS

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def app(gateway_env):
    return create_app(load(GatewayConfig, gateway_env))


@pytest.fixture(scope="module")
def doc(app):
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    return response.json


def test_every_route_has_a_spec_entry(app):
    missing = openapi.undocumented(app)
    assert not missing, (
        "routes without an entry in loupe_gateway/openapi/spec.py OPERATIONS: "
        + ", ".join(missing))


def test_every_spec_entry_has_a_route(app):
    stale = openapi.unrouted(app)
    assert not stale, "OPERATIONS entries without a route: " + ", ".join(stale)


def test_document_structure(doc):
    assert doc["openapi"].startswith("3.0.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert set(doc) <= {"openapi", "info", "servers", "paths", "components", "security", "tags",
                        "externalDocs"}
    operation_ids = []
    for path, methods in doc["paths"].items():
        assert path.startswith("/")
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in methods.items():
            assert method in {"get", "post", "put", "patch", "delete"}
            assert op["summary"] and op["responses"] and "default" in op["responses"]
            operation_ids.append(op["operationId"])
            path_params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert path_params == names, (path, method)
            for p in op["parameters"]:
                assert p["in"] in {"path", "query", "header"} and "schema" in p
                assert p["in"] != "path" or p["required"] is True
            for status in op["responses"]:
                assert status == "default" or re.fullmatch(r"[1-5]\d\d", status)
    assert len(operation_ids) == len(set(operation_ids)), "operationId must be unique"


def test_every_reference_resolves(doc):
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', __import__("json").dumps(doc))
    assert refs and set(refs) <= set(doc["components"]["schemas"])
    assert set(SCHEMAS) == set(doc["components"]["schemas"])


def test_custom_vision_paths_and_keys(doc):
    paths = doc["paths"]
    urls = paths["/customvision/{version}/training/projects/{projectId}/images/urls"]["post"]
    assert urls["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ImageUrlCreateBatch"}
    assert {"200", "207", "401", "429"} <= set(urls["responses"])
    assert urls["security"] == [{"Training-Key": []}]
    classify = paths["/customvision/{version}/prediction/{projectId}/classify/iterations/"
                     "{publishedName}/url/nostore"]["post"]
    assert classify["security"] == [{"Prediction-Key": []}]
    version = next(p for p in classify["parameters"] if p["name"] == "version")
    assert version["schema"]["enum"] == ["v3.0", "v3.1"]
    assert "Retry-After" in classify["responses"]["429"]["headers"]


def test_sdk_operation_names_exist_in_the_sdk():
    # The SDK is pinned in requirements.txt: its absence is a failure, not a skip.
    from azure.cognitiveservices.vision.customvision.prediction import operations as prediction
    from azure.cognitiveservices.vision.customvision.training import operations as training

    known = set(dir(training.CustomVisionTrainingClientOperationsMixin)) | set(
        dir(prediction.CustomVisionPredictionClientOperationsMixin))
    named = {op.sdk for ops in OPERATIONS.values() for op in ops.values() if op.sdk}
    assert named and named <= known, named - known


def test_docs_page_is_self_contained(app):
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and b"openapi.json" in page.data
    html = page.get_data(as_text=True)
    # Nothing is loaded from another origin: every src/href is same-origin.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert url.startswith("/") or url.startswith("#") or url.startswith("data:"), url
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset in re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200
    script = client.get("/docs/static/docs.js").get_data(as_text=True)
    assert "http://" not in script and "https://" not in script and "innerHTML" not in script
