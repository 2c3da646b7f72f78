"""Rate limiting per API key: a token bucket per key, in the gateway process.

Each key (the `Training-Key` or `Prediction-Key` header, before it is even resolved, so a flood
of bad keys costs no metadata lookup) gets a bucket of `burst` tokens refilled at `rate` tokens
per second; a request takes one token. With no token left the request is answered 429
`{"code": "TooManyRequests", "message": ...}` with `Retry-After` (whole seconds), which the
official SDK's retry policy (msrest, urllib3 Retry) honours.

The limit is per gateway process: with N replicas a key gets up to N times the rate, as with any
in-process limiter; Custom Vision's own S0 tier allows 10 transactions per second.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from flask import Flask, request

from loupe_common.errors import TooManyRequests
from loupe_gateway.auth import HEADERS

#: Buckets kept before idle ones (full again) are dropped.
_MAX_KEYS = 100_000


class TokenBucket:
    """`burst` tokens, refilled continuously at `rate` per second.

    Args:
        rate: tokens added per second (> 0).
        burst: bucket size: requests allowed at once after a quiet period (>= 1).
        now: the current time of the caller's clock (seconds, monotonic).
    """

    __slots__ = ("rate", "burst", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.updated = float(burst), now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float) -> float:
        """Takes one token; returns 0.0 when granted, else the seconds until one is available."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class RateLimiter:
    """One TokenBucket per key; thread-safe.

    Args:
        rate: requests per second per key; 0 or less disables limiting.
        burst: requests a key may make at once.
        clock: monotonic clock (tests inject a fake one).
    """

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> float:
        """0.0 when `key` may make a request now, else the seconds it must wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= _MAX_KEYS:
                    self._evict(now)
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
            return bucket.take(now)

    def peek(self, key: str) -> float:
        """The seconds until `key` has a token, taking none (0.0: it has one, or is unknown)."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            bucket._refill(now)
            return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / bucket.rate

    def _evict(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_KEYS:  # every bucket busy: start over rather than grow
            self._buckets.clear()


def retry_after(wait: float) -> int:
    """The Retry-After value (whole seconds, at least 1) for a wait of `wait` seconds."""
    return max(1, math.ceil(wait))


def too_many_requests(wait: float) -> TooManyRequests:
    seconds = retry_after(wait)
    err = TooManyRequests(
        f"Rate limit is exceeded. Try again in {seconds} seconds.", "TooManyRequests"
    )
    err.headers = {"Retry-After": str(seconds)}  # type: ignore[attr-defined]
    return err


def init_app(app: Flask, limiter: RateLimiter) -> None:
    """Checks every key a request carries against `limiter` before anything else."""
    app.extensions["loupe.ratelimit"] = limiter
    if not limiter.enabled:
        return

    @app.before_request
    def _rate_limit():
        # Every key header counts: a random Training-Key beside a real Prediction-Key must not
        # give the request a fresh bucket of its own.
        waits = [limiter.check(f"{header}:{key}") for header in HEADERS.values()
                 if (key := (request.headers.get(header) or "").strip())]
        if waits and max(waits) > 0:
            raise too_many_requests(max(waits))
