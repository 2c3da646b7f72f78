"""The one exception hierarchy of Loupe's domain.

Every service raises these; one gRPC interceptor maps them to status codes (carrying the Custom
Vision error code in trailing metadata) and the gateway's one Flask error handler maps them to
HTTP responses `{"code": ..., "message": ...}` with the status Custom Vision uses.
"""
from __future__ import annotations

import grpc

#: Trailing-metadata key that carries the Custom Vision error code across gRPC.
ERROR_CODE_KEY = "loupe-error-code"


class LoupeError(Exception):
    """A failure the caller can act on. `code` is a Custom Vision error code."""

    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL
    default_code = "Unknown"

    def __init__(self, message: str, code: str | None = None, *, retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        #: False: internal clients must not retry the call (their retry policy retries
        #: UNAVAILABLE); the server tells them with gRPC's retry pushback.
        self.retryable = retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message})"


class BadRequest(LoupeError):
    http_status = 400
    grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    default_code = "BadRequest"


class Unauthorized(LoupeError):
    http_status = 401
    grpc_status = grpc.StatusCode.UNAUTHENTICATED
    default_code = "Unauthorized"


class PermissionDenied(LoupeError):
    """A valid credential that may not make this call (the public gRPC API: a prediction key
    on a training RPC; REST answers such a key 401 Unauthorized, as Custom Vision does)."""

    http_status = 401
    grpc_status = grpc.StatusCode.PERMISSION_DENIED
    default_code = "Unauthorized"


class NotFound(LoupeError):
    http_status = 404
    grpc_status = grpc.StatusCode.NOT_FOUND
    default_code = "NotFound"


class Conflict(LoupeError):
    """The request is valid but the current state refuses it (Custom Vision answers 400)."""

    http_status = 400
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
    default_code = "BadRequest"


class AlreadyExists(LoupeError):
    """An id the caller chose is taken by something it may not see (Loupe's import path, which
    creates projects and tags with given ids): 409 with Custom Vision's `Conflict` code."""

    http_status = 409
    grpc_status = grpc.StatusCode.ALREADY_EXISTS
    default_code = "Conflict"


class TooManyRequests(LoupeError):
    http_status = 429
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_code = "TooManyRequests"


class Unavailable(LoupeError):
    http_status = 503
    grpc_status = grpc.StatusCode.UNAVAILABLE
    default_code = "ServiceUnavailable"


class Internal(LoupeError):
    http_status = 500
    grpc_status = grpc.StatusCode.INTERNAL
    default_code = "Unknown"


_BY_GRPC_STATUS = {
    cls.grpc_status: cls
    for cls in (BadRequest, Unauthorized, NotFound, Conflict, AlreadyExists, TooManyRequests,
                Unavailable)
}


def from_rpc_error(err: grpc.RpcError) -> LoupeError:
    """Turns a failed gRPC call back into the domain error the server raised."""
    code = None
    for key, value in (err.trailing_metadata() or ()):  # type: ignore[attr-defined]
        if key == ERROR_CODE_KEY:
            code = value
    status = err.code()  # type: ignore[attr-defined]
    cls = _BY_GRPC_STATUS.get(status, Internal)
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and code is None:
        cls, code = Unavailable, "ServiceUnavailable"
    return cls(err.details() or str(status), code)  # type: ignore[attr-defined]
