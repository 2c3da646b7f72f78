"""Rate limiting per key: the token bucket with an injected clock, and the 429 the app answers."""
from __future__ import annotations

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.config import load
from loupe_common.errors import NotFound, TooManyRequests, Unauthorized
from loupe_gateway import ratelimit
from loupe_gateway.app import create_app
from loupe_gateway.auth import TRAINING, KeyResolver
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


def test_every_key_header_counts_so_an_extra_random_key_is_no_bypass(gateway_env):
    app = create_app(load(GatewayConfig, {**gateway_env, "LOUPE_RATE_LIMIT_PER_SECOND": "0.01",
                                          "LOUPE_RATE_LIMIT_BURST": "2"}))
    client = app.test_client()
    path = "/customvision/v3.1/prediction/p/classify/iterations/x/image"
    for i in range(2):
        assert client.post(path, data=b"x", headers={"Prediction-Key": "p1"}).status_code != 429
    # A fresh Training-Key each time beside the spent Prediction-Key: still limited.
    for i in range(3):
        response = client.post(path, data=b"x", headers={"Prediction-Key": "p1", "Training-Key": f"r{i}"})
        assert response.status_code == 429, i


def _resolver(clock, rate=1.0, burst=3.0):
    calls = []

    def lookup(key):
        calls.append(key)
        if key == "good":
            return mpb.ResolveKeyResponse(account_id="a", kind=mpb.KEY_KIND_TRAINING)
        raise NotFound("no such key", "NotFound")

    return KeyResolver(lookup, ttl=30, clock=clock, unknown_keys=RateLimiter(rate, burst, clock=clock)), calls


def test_unknown_keys_are_limited_per_client_address_without_a_lookup_past_the_limit():
    clock = Clock()
    keys, calls = _resolver(clock)
    for i in range(3):
        with pytest.raises(Unauthorized):
            keys.authenticate(TRAINING, f"guess{i}", "10.9.9.9")
    assert len(calls) == 3
    with pytest.raises(TooManyRequests) as err:
        keys.authenticate(TRAINING, "guess3", "10.9.9.9")
    assert int(err.value.headers["Retry-After"]) >= 1
    assert len(calls) == 3  # refused before the look-up
    # Any key not yet known waits too (it cannot be told from a guess without the look-up);
    # a retried unknown key is answered from the cache; another client is not affected.
    with pytest.raises(TooManyRequests):
        keys.authenticate(TRAINING, "good", "10.9.9.9")
    with pytest.raises(Unauthorized):
        keys.authenticate(TRAINING, "guess0", "10.9.9.9")
    with pytest.raises(Unauthorized):
        keys.authenticate(TRAINING, "other", "10.1.1.1")
    assert calls == ["guess0", "guess1", "guess2", "other"]
    clock.now += 1.0  # one token back: the real key is looked up, and a known key takes none
    assert keys.authenticate(TRAINING, "good", "10.9.9.9").account_id == "a"
    with pytest.raises(Unauthorized):
        keys.authenticate(TRAINING, "guess4", "10.9.9.9")
    with pytest.raises(TooManyRequests):
        keys.authenticate(TRAINING, "guess5", "10.9.9.9")


def test_unknown_key_limit_defaults_and_off(gateway_env):
    cfg = load(GatewayConfig, gateway_env)
    assert (cfg.unknown_keys_per_second, cfg.unknown_keys_burst) == (5.0, 30.0)
    clock = Clock()
    keys, calls = _resolver(clock, rate=0)
    for i in range(50):
        with pytest.raises(Unauthorized):
            keys.authenticate(TRAINING, f"g{i}", "10.9.9.9")
    assert len(calls) == 50
