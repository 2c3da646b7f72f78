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

    Args:
        lookup: key -> ResolveKeyResponse; raises NotFound for an unknown key.
        ttl: seconds an answer is reused.
        clock: monotonic clock (tests).
    """

    def __init__(self, lookup: Callable[[str], mpb.ResolveKeyResponse], ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self._lookup, self._ttl, self._clock = lookup, ttl, clock
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

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

    def authenticate(self, kind: str, key: str | None) -> Principal:
        """The principal of `key` when it is a key of `kind`; Unauthorized otherwise."""
        key = (key or "").strip()
        if not key:
            raise unauthorized()
        principal = self.resolve(key)
        if principal is None or principal.kind != kind:
            raise unauthorized()
        return principal
