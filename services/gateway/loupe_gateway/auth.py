"""API keys: `Training-Key` for the training API, `Prediction-Key` for prediction.

Keys are resolved to their account by the metadata service (ResolveKey); results, including
unknown keys, are cached for a short time so a busy client costs one lookup per TTL.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import NotFound, Unauthorized

TRAINING, PREDICTION = "training", "prediction"
HEADERS = {TRAINING: "Training-Key", PREDICTION: "Prediction-Key"}
_KINDS = {mpb.KEY_KIND_TRAINING: TRAINING, mpb.KEY_KIND_PREDICTION: PREDICTION}
_MAX_ENTRIES = 10000


def unauthorized() -> Unauthorized:
    return Unauthorized(
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource.",
        "Unauthorized",
    )


@dataclass(frozen=True)
class Principal:
    account_id: str
    kind: str
    prediction_resource_id: str


class KeyResolver:
    """Resolves keys through `lookup` (metadata ResolveKey), caching answers for `ttl` seconds.

    Guessing keys is limited per client address: each unknown key a client sends takes a token
    of its bucket in `unknown_keys` (a rate limiter keyed by address), and a client whose bucket
    is empty gets 429 before its next new key is even looked up, so a flood of random keys
    costs no database query per attempt. Known keys and cached answers are not counted.

    Args:
        lookup: key -> ResolveKeyResponse; raises NotFound for an unknown key.
        ttl: seconds an answer is reused.
        clock: monotonic clock (tests).
        unknown_keys: the per-address limiter of unknown keys (None: not limited).
    """

    def __init__(self, lookup: Callable[[str], mpb.ResolveKeyResponse], ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, unknown_keys=None):
        self._lookup, self._ttl, self._clock = lookup, ttl, clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self._unknown = unknown_keys

    def _cached(self, key: str) -> tuple[bool, Principal | None]:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    def resolve(self, key: str) -> Principal | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            answer = self._lookup(key)
            principal: Principal | None = Principal(
                answer.account_id, _KINDS.get(answer.kind, ""), answer.prediction_resource_id
            )
        except NotFound:
            principal = None
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + self._ttl, principal)
        return principal

    def authenticate(self, kind: str, key: str | None, client: str = "") -> Principal:
        """The principal of `key` when it is a key of `kind`; Unauthorized otherwise.

        Args:
            client: the caller's address, against which unknown keys are counted.
        Raises:
            Unauthorized: no key, an unknown key or a key of the other kind.
            TooManyRequests: `client` sent too many unknown keys; this one was not looked up.
        """
        key = (key or "").strip()
        if not key:
            raise unauthorized()
        principal = self.lookup(key, client)
        if principal is None or principal.kind != kind:
            raise unauthorized()
        return principal

    def lookup(self, key: str, client: str = "") -> Principal | None:
        """`resolve`, with unknown keys counted against `client` (see the class).

        Raises:
            TooManyRequests: `client` sent too many unknown keys; this one was not looked up.
        """
        found, principal = self._cached(key)
        if found:
            return principal
        limited = self._unknown is not None and self._unknown.enabled and client
        if limited and (wait := self._unknown.peek(client)) > 0:
            raise _guessing(wait)
        principal = self.resolve(key)
        if principal is None and limited:
            self._unknown.check(client)
        return principal


def _guessing(wait: float):
    from loupe_gateway.ratelimit import too_many_requests  # ratelimit imports this module
    return too_many_requests(wait)
