"""Thin gRPC clients: one channel per target, domain errors instead of grpc.RpcError, and the
caller's internal credential on every call."""
from __future__ import annotations

import functools
from typing import Any

import grpc

from loupe_common import internal_auth
from loupe_common.internal_tls import InternalTLS
from loupe_common.errors import ERROR_CODE_KEY, Internal, from_rpc_error
from loupe_common.grpcserver import CLIENT_OPTIONS


class ServiceClient:
    """Wraps a generated stub so each call raises `LoupeError`, has a deadline and presents
    the caller's internal credential.

    Usage: `client = ServiceClient(address, MetadataServiceStub, credential=cred)`, then
    `client.GetProject(request)`; `cred` is `internal_auth.credential(secret, role)`.
    Without a credential the internal servers answer UNAUTHENTICATED. With `tls`
    (`internal_tls.load`) the channel is mutual TLS: servers configured for it accept nothing else.
    """

    def __init__(self, address: str, stub_cls: type, timeout: float = 30.0,
                 credential: str | None = None, tls: InternalTLS | None = None):
        self.address = address
        if tls is None:
            self.channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
        else:
            self.channel = grpc.secure_channel(address, tls.channel_credentials(),
                                               options=CLIENT_OPTIONS + tls.channel_options())
        self._stub = stub_cls(self.channel)
        self._timeout = timeout
        self.metadata = ((internal_auth.METADATA_KEY, credential),) if credential else ()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        @functools.wraps(method)
        def call(request, timeout: float | None = None):
            try:
                return method(request, timeout=timeout or self._timeout, metadata=self.metadata)
            except grpc.RpcError as err:
                raise _domain_error(err) from None

        return call

    def close(self) -> None:
        self.channel.close()


_REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _domain_error(err: grpc.RpcError) -> Exception:
    """The domain error of a failed call. A refusal by internal auth (no Loupe error code in the
    trailers) is a misconfigured install, not the end user's fault: Internal, never the
    Unauthorized that would tell a client its API key is wrong."""
    if err.code() in _REFUSED and not any(  # type: ignore[attr-defined]
            key == ERROR_CODE_KEY for key, _ in (err.trailing_metadata() or ())):  # type: ignore[attr-defined]
        return Internal(f"internal RPC refused ({err.code().name}): {err.details()}")  # type: ignore[attr-defined]
    return from_rpc_error(err)
