"""Gateways cache published iterations; a change made through one gateway reaches every other
through `loupe.publications` within moments, long before the cache's TTL."""
from __future__ import annotations

import time

import pytest

from loupe_common import config as cfg
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_model.datasets import load_fashion_mnist
from rest_api import PREDICTION

pytestmark = pytest.mark.e2e


@pytest.fixture
def second_gateway(live):
    """A second gateway (in this process) on the same backends, its publications listener on."""
    config = cfg.load(GatewayConfig, live.service_env())
    app = create_app(config)
    backends = app.extensions["loupe"].backends
    stop, threads = backends.start_publications()
    deadline = time.monotonic() + 30
    while not backends.published.listening:
        assert time.monotonic() < deadline, "the listener never read loupe.publications"
        time.sleep(0.05)
    yield app
    stop.set()
    for thread in threads:
        thread.join(10)
    backends.close()


def test_an_unpublished_iteration_is_refused_by_every_gateway_at_once(live, api, second_gateway):
    backends = second_gateway.extensions["loupe"].backends
    assert backends.published.ttl >= 10, "the shipped TTL is what this test shows is not relied on"
    pid, iteration_id = api.published_project("pubcache", "cached", seed=71)
    image = load_fashion_mnist("test", (0,), 1, seed=72)[0][0]
    client = second_gateway.test_client()

    def classify_on_second():
        return client.post(f"{PREDICTION}/{pid}/classify/iterations/cached/image/nostore", data=image,
                           headers={"Prediction-Key": api.prediction_key,
                                    "Content-Type": "application/octet-stream"})

    # Published: both gateways answer; the second one's later lookups come from its cache.
    assert classify_on_second().status_code == 200
    assert len(backends.published) == 1
    hits = backends.published.hits
    assert classify_on_second().status_code == 200
    assert backends.published.hits == hits + 1, "the second lookup asked metadata again"
    api.predict(f"/{pid}/classify/iterations/cached/image/nostore", image)

    # Unpublished through the stack's gateway: it refuses at once, the second one within moments.
    api.train("DELETE", f"/projects/{pid}/iterations/{iteration_id}/publish", expect=204)
    unpublished = time.monotonic()
    api.predict(f"/{pid}/classify/iterations/cached/image/nostore", image, expect=404)
    while (resp := classify_on_second()).status_code == 200:
        assert time.monotonic() - unpublished < 5.0, "the second gateway kept the unpublished iteration"
        time.sleep(0.01)
    took = time.monotonic() - unpublished
    print(f"second gateway refused the unpublished iteration {took:.3f} s after the unpublish")
    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert resp.get_json()["code"] == "NotFoundIteration"

    # Published again under the same name: seen at once (refusals are never cached).
    api.train("POST", f"/projects/{pid}/iterations/{iteration_id}/publish",
              params={"publishName": "cached", "predictionId": api.resource_id})
    assert classify_on_second().status_code == 200
