"""Rate limiting per key: the token bucket with an injected clock, and the 429 the app answers."""
from __future__ import annotations

import pytest

from loupe_common.config import load
from loupe_gateway import ratelimit
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.ratelimit import RateLimiter, TokenBucket

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=10, burst=20, now=0.0)
    assert all(bucket.take(0.0) == 0.0 for _ in range(20))
    assert bucket.take(0.0) == pytest.approx(0.1)  # one token every 1/rate seconds
    assert bucket.take(0.05) == pytest.approx(0.05)
    assert bucket.take(0.1) == 0.0
    assert bucket.take(0.1) > 0
    # A long pause refills to the burst, never beyond.
    assert sum(bucket.take(100.0) == 0.0 for _ in range(25)) == 20


def test_limiter_is_per_key_and_refills_with_the_clock():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("a") == pytest.approx(0.5)
    assert limiter.check("b") == 0.0  # another key has its own bucket
    clock.now += 0.5
    assert limiter.check("a") == 0.0
    assert limiter.check("a") == pytest.approx(0.5)
    clock.now += 10
    assert [limiter.check("a") for _ in range(4)][:3] == [0.0, 0.0, 0.0]


def test_zero_rate_disables():
    limiter = RateLimiter(rate=0, burst=1)
    assert not limiter.enabled
    assert all(limiter.check("k") == 0.0 for _ in range(1000))


def test_retry_after_is_whole_seconds_at_least_one():
    assert ratelimit.retry_after(0.01) == 1
    assert ratelimit.retry_after(1.0) == 1
    assert ratelimit.retry_after(1.2) == 2


def test_config_defaults_and_variables(gateway_env):
    cfg = load(GatewayConfig, gateway_env)
    assert (cfg.rate_limit_per_second, cfg.rate_limit_burst) == (10.0, 20.0)
    cfg = load(GatewayConfig, {**gateway_env, "LOUPE_RATE_LIMIT_PER_SECOND": "1.5",
                               "LOUPE_RATE_LIMIT_BURST": "2"})
    assert (cfg.rate_limit_per_second, cfg.rate_limit_burst) == (1.5, 2.0)


def test_app_answers_429_with_retry_after_before_any_backend_call(gateway_env):
    # Burst 2: the first two requests reach authentication (and fail there: the metadata
    # target is unreachable), the third is refused by the limiter without a backend call.
    app = create_app(load(GatewayConfig, {**gateway_env, "LOUPE_RATE_LIMIT_PER_SECOND": "0.01",
                                          "LOUPE_RATE_LIMIT_BURST": "2"}))
    client = app.test_client()
    path = "/customvision/v3.3/training/projects"
    for _ in range(2):
        assert client.get(path, headers={"Training-Key": "k1"}).status_code != 429
    response = client.get(path, headers={"Training-Key": "k1"})
    assert response.status_code == 429
    assert response.json["code"] == "TooManyRequests"
    assert "Rate limit is exceeded" in response.json["message"]
    assert int(response.headers["Retry-After"]) >= 1
    # Other keys, and requests without a key, are not affected.
    assert client.get(path, headers={"Training-Key": "k2"}).status_code != 429
    assert client.get(path).status_code == 401
    assert client.get("/healthz").status_code == 200
    response = client.post("/customvision/v3.1/prediction/p/classify/iterations/x/image",
                           headers={"Prediction-Key": "k1"}, data=b"x")
    assert response.status_code != 429  # Prediction-Key "k1" is another key than Training-Key
