"""The body cap of each route, and the admission of a request from its headers alone."""
from __future__ import annotations

import pytest

from loupe_common.config import load
from loupe_common.limits import MAX_BATCH_IMAGES, MAX_PREDICTION_IMAGE_BYTES, MAX_TRAINING_IMAGE_BYTES
from loupe_gateway import bodies
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig

pytestmark = pytest.mark.unit

MULTIPART = "multipart/form-data; boundary=x"


@pytest.fixture
def config(gateway_env) -> GatewayConfig:
    return load(GatewayConfig, gateway_env)


def test_limits_of_the_routes(config):
    batch = bodies.limit_for(config, "training.images.create_images_from_data", MULTIPART)
    assert batch.bytes == MAX_BATCH_IMAGES * MAX_TRAINING_IMAGE_BYTES + bodies.BATCH_SLACK
    assert batch.code == "BadRequestExceededBatchSize"
    raw = bodies.limit_for(config, "training.images.create_images_from_data", "image/png")
    assert (raw.bytes, raw.code) == (MAX_TRAINING_IMAGE_BYTES, "BadRequestImageSizeBytes")
    files = bodies.limit_for(config, "training.images.create_images_from_files", "application/json")
    assert files.bytes == bodies.base64_size(MAX_BATCH_IMAGES * MAX_TRAINING_IMAGE_BYTES) + bodies.BATCH_SLACK
    assert files.code == "BadRequestExceededBatchSize"
    image = bodies.limit_for(config, "prediction.classify_image", "application/octet-stream")
    assert (image.bytes, image.code) == (MAX_PREDICTION_IMAGE_BYTES, "BadRequestImageSizeBytes")
    assert bodies.limit_for(config, "prediction.classify_image", MULTIPART).bytes == (
        MAX_PREDICTION_IMAGE_BYTES + bodies.MULTIPART_SLACK)
    for endpoint in ("training.projects.create_project", None, "no.such.view"):
        assert bodies.limit_for(config, endpoint).bytes == bodies.JSON_LIMIT


def test_base64_size():
    assert [bodies.base64_size(n) for n in (0, 1, 2, 3, 4)] == [0, 4, 4, 4, 8]


def _environ(path: str, **headers) -> dict:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "loupe", "SERVER_PORT": "80",
               "wsgi.url_scheme": "http", "REMOTE_ADDR": "127.0.0.1", "SCRIPT_NAME": "", "QUERY_STRING": ""}
    environ.update(headers)
    return environ


PROJECT = "/customvision/v3.3/training/projects/00000000-0000-0000-0000-000000000001"


def test_admit_refuses_a_missing_key_then_a_declared_size_before_any_lookup(gateway_env):
    """No backend runs here (its address is unreachable): the refusals need none."""
    app = create_app(load(GatewayConfig, gateway_env))
    _, refusal = bodies.admit(app, _environ(PROJECT + "/images", CONTENT_TYPE=MULTIPART,
                                            CONTENT_LENGTH=str(1 << 30)))
    assert refusal.code == "Unauthorized"
    limit, refusal = bodies.admit(app, _environ(PROJECT + "/images", CONTENT_TYPE=MULTIPART,
                                                CONTENT_LENGTH=str(1 << 30), HTTP_TRAINING_KEY="k"))
    assert refusal.code == "BadRequestExceededBatchSize" and str(1 << 30) in refusal.message
    assert limit.code == "BadRequestExceededBatchSize"
    # the path spelled as Azure's portal spells it routes (and is capped) the same
    _, refusal = bodies.admit(app, _environ(PROJECT.replace("training", "Training") + "/Images/Files",
                                            CONTENT_TYPE="application/json", CONTENT_LENGTH=str(1 << 30),
                                            HTTP_TRAINING_KEY="k"))
    assert refusal.code == "BadRequestExceededBatchSize"
    # a route that takes no key (the UI, health) has the default cap
    _, refusal = bodies.admit(app, _environ("/nowhere", CONTENT_LENGTH=str(bodies.JSON_LIMIT + 1)))
    assert refusal.code == "BadRequest"
    assert bodies.admit(app, _environ("/nowhere", CONTENT_LENGTH="10")) == (
        bodies.limit_for(app.extensions["loupe"].config, None), None)


def test_the_app_answers_a_refusal_the_server_decided(gateway_env):
    app = create_app(load(GatewayConfig, gateway_env))
    refusal = bodies.Limit(10, "BadRequestImageSizeBytes", "one image").refusal(11)
    response = app.test_client().post(PROJECT + "/images", data=b"x" * 11, headers={"Training-Key": "k"},
                                      environ_overrides={bodies.REFUSAL: refusal})
    assert response.status_code == 400
    assert response.json == {"code": "BadRequestImageSizeBytes", "message": refusal.message}


def test_the_test_client_is_admitted_too(gateway_env):
    app = create_app(load(GatewayConfig, gateway_env))
    client = app.test_client()
    declared = bodies.base64_size(MAX_BATCH_IMAGES * MAX_TRAINING_IMAGE_BYTES) + bodies.BATCH_SLACK + 1
    response = client.post(PROJECT + "/images/files", data=b"{}", headers={
        "Training-Key": "k", "Content-Type": "application/json"},
        environ_overrides={"CONTENT_LENGTH": str(declared)})  # declared, never sent
    assert response.status_code == 400 and response.json["code"] == "BadRequestExceededBatchSize"
    response = client.post(PROJECT + "/images/files", data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_every_capped_endpoint_is_a_view_of_the_app(gateway_env):
    """A renamed view would fall to the 1 MB default cap and refuse every upload."""
    app = create_app(load(GatewayConfig, gateway_env))
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert bodies._BATCH | bodies._FILES | bodies._IMAGE <= endpoints
