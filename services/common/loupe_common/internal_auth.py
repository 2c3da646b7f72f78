"""Who may call an internal gRPC RPC: the credential Loupe's own services present, and the
per-server allowlist of roles by method. Pure: no I/O, no gRPC objects (grpcserver's
interceptor and clients.ServiceClient use it).

Every install has one secret (LOUPE_INTERNAL_SECRET). Each of Loupe's services calls with the
credential of its role, `<role>.<HMAC-SHA256(secret, role)>`, in call metadata `x-loupe-internal`;
a server recomputes the token of the role named and compares in constant time, then looks the
method up in its allowlist. A credential names only its role, so one leaked from a trainer lets
its holder do what a trainer may do, not what the gateway may.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterable, Mapping

#: Call-metadata key of the credential (gRPC metadata keys are lowercase).
METADATA_KEY = "x-loupe-internal"

#: The roles: one per kind of Loupe process that calls another.
GATEWAY = "gateway"
TRAINING = "training"
#: The prediction service; its recorder (stored predictions) runs in the same process.
PREDICTION = "prediction"
ROLES = frozenset({GATEWAY, TRAINING, PREDICTION})

#: Services every caller may use without a credential: kubelet's gRPC probes cannot send
#: metadata, and reflection describes only the API, never data.
EXEMPT_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})

#: Domain separation: a token is good for this purpose only, whatever else the secret signs.
_CONTEXT = b"loupe-internal-v1:"


def token(secret: str, role: str) -> str:
    """The token of `role` under `secret` (hex HMAC-SHA256)."""
    return hmac.new(secret.encode(), _CONTEXT + role.encode(), hashlib.sha256).hexdigest()


def credential(secret: str, role: str) -> str:
    """The metadata value a service of `role` presents: `<role>.<token>`.

    Raises:
        ValueError: `role` is not one of ROLES, or the secret is empty.
    """
    if role not in ROLES:
        raise ValueError(f"unknown internal role {role!r}")
    if not secret:
        raise ValueError("the internal secret is empty")
    return f"{role}.{token(secret, role)}"


def verify(secret: str, value: str | None) -> str | None:
    """The role a credential proves, or None when it proves nothing (missing, malformed, an
    unknown role, or a token of another secret). Compares in constant time."""
    if not value or not secret:
        return None
    role, sep, presented = value.partition(".")
    if not sep or role not in ROLES:
        return None
    if not hmac.compare_digest(presented.encode(), token(secret, role).encode()):
        return None
    return role


def role_of(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The role named by the credential in call metadata ("" without one). For servicers that
    narrow by role: the server's interceptor has already verified the credential."""
    for key, value in metadata:
        if key == METADATA_KEY:
            text = value.decode() if isinstance(value, bytes) else value
            return text.partition(".")[0]
    return ""


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the server does with a call: `code` is "OK", "UNAUTHENTICATED" or
    "PERMISSION_DENIED" (names of grpc.StatusCode), `role` the caller's when proven."""

    code: str
    role: str = ""
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.code == "OK"


@dataclasses.dataclass(frozen=True)
class Policy:
    """The internal authentication of one gRPC server.

    Attributes:
        secret: the install's internal secret.
        allow: fully qualified service name -> method name -> roles allowed to call it. A
            method absent from the table is refused to every role (PERMISSION_DENIED), so a new
            RPC is closed until someone decides who may call it.
    """

    secret: str
    allow: Mapping[str, Mapping[str, frozenset[str]]]

    def __post_init__(self):
        if not self.secret:
            raise ValueError("internal auth needs a non-empty secret (LOUPE_INTERNAL_SECRET)")
        for service, methods in self.allow.items():
            for method, roles in methods.items():
                unknown = set(roles) - ROLES
                if unknown:
                    raise ValueError(f"{service}/{method}: unknown roles {sorted(unknown)}")

    def decide(self, full_method: str, credential_value: str | None) -> Decision:
        """Decides a call to `full_method` ("/package.Service/Method").

        Args:
            full_method: the method as gRPC names it in a call.
            credential_value: the `x-loupe-internal` metadata value (None when absent).
        Returns:
            the Decision; exempt services are always "OK".
        """
        service, _, method = full_method.lstrip("/").partition("/")
        if service in EXEMPT_SERVICES:
            return Decision("OK")
        role = verify(self.secret, credential_value)
        if role is None:
            return Decision("UNAUTHENTICATED", message="internal RPC: missing or invalid Loupe internal credential")
        if role not in self.allow.get(service, {}).get(method, frozenset()):
            return Decision("PERMISSION_DENIED", role, f"internal RPC {method}: role {role!r} may not call it")
        return Decision("OK", role)


def table(**methods: Iterable[str]) -> dict[str, frozenset[str]]:
    """An allowlist of one service written as `Method=(ROLE, ...)` (reads like the table it is)."""
    return {name: frozenset(roles) for name, roles in methods.items()}
