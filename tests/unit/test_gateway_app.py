"""The gateway app on paths that end before any backend call: errors are Custom Vision JSON.

The backends' clients connect lazily, so the app is built against unreachable targets; every
request here must be answered without touching them.
"""
from __future__ import annotations

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.config import ConfigError, load
from loupe_common.errors import NotFound, Unauthorized
from loupe_gateway.app import create_app
from loupe_gateway.auth import KeyResolver
from loupe_gateway.config import GatewayConfig

pytestmark = pytest.mark.unit


@pytest.fixture
def app(gateway_env):
    return create_app(load(GatewayConfig, gateway_env))


@pytest.fixture
def client(app):
    return app.test_client()


def test_config_defaults_and_required_variables(gateway_env):
    cfg = load(GatewayConfig, gateway_env)
    assert (cfg.host, cfg.port) == ("127.0.0.1", 8080)
    assert cfg.max_training_image_bytes == 6291456
    assert cfg.max_prediction_image_bytes == 4194304
    assert (cfg.max_batch_images, cfg.max_batch_tags) == (64, 20)
    assert (cfg.max_image_side, cfg.min_images_per_tag) == (10240, 5)
    with pytest.raises(ConfigError) as err:
        load(GatewayConfig, {})
    for name in gateway_env:
        assert name in str(err.value)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


@pytest.mark.parametrize("path", [
    "/customvision/v3.3/training/projects",
    "/customvision/v3.0/training/domains",
    "/customvision/v3.4-preview/training/projects/x/images/tagged",
])
def test_training_without_key_is_401(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json["code"] == "Unauthorized"
    assert response.json["message"].startswith("Access denied due to invalid subscription key")


def test_prediction_without_key_is_401(client):
    response = client.post(
        "/customvision/v3.0/prediction/p/classify/iterations/prod/image", data=b"\x00" * 10,
        content_type="application/octet-stream",
    )
    assert response.status_code == 401 and response.json["code"] == "Unauthorized"


def test_prediction_key_on_training_route_is_still_checked(client):
    response = client.get("/customvision/v3.3/training/projects", headers={"Prediction-Key": "k"})
    assert response.status_code == 401


@pytest.mark.parametrize("path", [
    "/nowhere", "/customvision/v9.9/training/projects", "/customvision/v3.3/prediction/p/x",
    "/customvision/v3.2/prediction/p/classify/iterations/prod/image",
])
def test_unknown_route_is_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["code"] == "NotFound" and response.json["message"]


def test_wrong_method_is_json_405(client):
    response = client.put("/healthz")
    assert response.status_code == 405
    assert response.json["code"] == "MethodNotAllowed"
    assert "GET" in response.headers["Allow"]


def test_oversized_prediction_body_is_400_before_any_backend_call(client):
    response = client.post(
        "/customvision/v3.1/prediction/p/classify/iterations/prod/image/nostore",
        data=b"\xff" * (4 * 1024 * 1024 + 1),
        headers={"Prediction-Key": "anything"},
        content_type="application/octet-stream",
    )
    assert response.status_code == 400
    assert response.json["code"] == "BadRequestImageSizeBytes"


def test_badly_signed_image_uri_is_401(client):
    path = "/customvision/v3.3/training/projects/p/images/i/original"
    response = client.get(f"{path}?a=acct&exp=99999999999&sig=deadbeef")
    assert response.status_code == 401 and response.json["code"] == "Unauthorized"
    expired = client.get(f"{path}?a=acct&exp=1&sig=deadbeef")
    assert expired.status_code == 401


def test_metrics_count_requests_by_route(client):
    client.get("/healthz")
    client.get("/nowhere")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'loupe_gateway_requests_total{endpoint="/healthz",method="GET",status="200"}' in body
    assert 'endpoint="unmatched",method="GET",status="404"' in body
    assert "loupe_gateway_request_seconds_bucket" in body


def test_uncaught_error_is_json_500(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("kaput")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json["code"] == "Unknown" and "kaput" not in response.json["message"]


def test_key_resolver_caches_answers_and_checks_the_kind():
    calls: list[str] = []
    now = [0.0]

    def lookup(key: str) -> mpb.ResolveKeyResponse:
        calls.append(key)
        if key != "good":
            raise NotFound("unknown key", "NotFound")
        return mpb.ResolveKeyResponse(account_id="acct", kind=mpb.KEY_KIND_TRAINING)

    keys = KeyResolver(lookup, ttl=30, clock=lambda: now[0])
    assert keys.authenticate("training", "good").account_id == "acct"
    assert keys.authenticate("training", " good ").account_id == "acct"
    assert calls == ["good"]
    with pytest.raises(Unauthorized):
        keys.authenticate("prediction", "good")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            keys.authenticate("training", "bad")
    assert calls == ["good", "bad"]
    with pytest.raises(Unauthorized):
        keys.authenticate("training", "")
    now[0] = 31
    keys.authenticate("training", "good")
    assert calls == ["good", "bad", "good"]


@pytest.mark.parametrize("path", [
    "/customvision/v3.0/Prediction/p/classify/iterations/prod/image",
    "/customvision/v3.0/PREDICTION/p/Classify/Iterations/prod/Image/NoStore",
    "/CustomVision/v3.1/prediction/p/classify/iterations/prod/url",
])
def test_prediction_paths_route_whatever_their_case(client, path):
    # Routed (the key is checked: 401), not the 404 of an unknown path.
    response = client.post(path, data=b"\x00" * 10, content_type="application/octet-stream")
    assert response.status_code == 401 and response.json["code"] == "Unauthorized"


def test_training_paths_route_whatever_their_case(client):
    response = client.get("/customvision/v3.3/Training/Projects/x/Images/Tagged")
    assert response.status_code == 401
    response = client.get("/customvision/v3.3/Training/no-such-thing")
    assert response.status_code == 404 and response.json["code"] == "NotFound"
