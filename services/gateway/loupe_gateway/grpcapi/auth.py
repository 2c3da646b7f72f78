"""The caller of a public gRPC call: its key from request metadata, resolved with the REST key
resolver (loupe_gateway.auth) and checked against the same per-key rate limiter.

Status mapping (docs/grpc.md):
- no key, or a key no account has: UNAUTHENTICATED (Unauthorized);
- a valid key of the other kind (a prediction key on a training RPC or the reverse):
  PERMISSION_DENIED (Unauthorized): the caller is known, the call is not its to make;
- over the rate limit: RESOURCE_EXHAUSTED (TooManyRequests).
"""
from __future__ import annotations

from collections.abc import Iterable

from loupe_common.errors import PermissionDenied
from loupe_gateway.auth import HEADERS, PREDICTION, TRAINING, KeyResolver, Principal, unauthorized
from loupe_gateway.ratelimit import RateLimiter, too_many_requests

#: gRPC metadata keys (lower-case, as gRPC requires) carrying the API keys.
METADATA_KEYS = {TRAINING: "training-key", PREDICTION: "prediction-key"}


def permission_denied(kind: str) -> PermissionDenied:
    other = PREDICTION if kind == TRAINING else TRAINING
    return PermissionDenied(
        f"a {other} key cannot make {kind} calls; send a {kind} key as `{METADATA_KEYS[kind]}`",
        "Unauthorized",
    )


def keys_of(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """kind -> the key sent for it (stripped; kinds without a key left out)."""
    found: dict[str, str] = {}
    for name, value in metadata or ():
        for kind, key_name in METADATA_KEYS.items():
            if name.lower() == key_name and isinstance(value, str) and value.strip():
                found.setdefault(kind, value.strip())
    return found


def buckets(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[str]:
    """The rate limiter's keys of a call (REST's: header name and key), one per API key sent:
    every key counts, so an extra random key gives no fresh budget."""
    return [f"{HEADERS[kind]}:{key}" for kind, key in keys_of(metadata).items()]


def check_rate(limiter: RateLimiter | None, keys: list[str]) -> None:
    """Raises TooManyRequests when any of `keys` (see `buckets`) is over the limit."""
    if limiter is not None and keys:
        wait = max(limiter.check(key) for key in keys)
        if wait > 0:
            raise too_many_requests(wait)


def peer_address(peer: str) -> str:
    """The address of a gRPC peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000")."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:rest.find("]")]
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return rest


def authenticate(keys: KeyResolver, limiter: RateLimiter | None, kind: str,
                 metadata: Iterable[tuple[str, str | bytes]] | None, client: str = "") -> Principal:
    """The principal allowed to make a `kind` call with `metadata`.

    Args:
        keys: the gateway's key resolver (cached metadata ResolveKey).
        limiter: the gateway's per-key limiter (None or disabled: no limit); a key shares one
            budget across REST and gRPC.
        kind: TRAINING or PREDICTION, the key the service needs.
        client: the caller's address, against which unknown keys are counted (REST's rule).
    Raises:
        Unauthorized, PermissionDenied, TooManyRequests: see the module docstring.
    """
    sent = keys_of(metadata)
    if not sent:
        raise unauthorized()
    # The key for this kind when sent, else the other: it decides between the two refusals.
    check_rate(limiter, buckets(metadata))
    used = kind if kind in sent else next(iter(sent))
    principal = keys.lookup(sent[used], client)
    if principal is None:
        raise unauthorized()
    if principal.kind != kind:
        raise permission_denied(kind)
    return principal
