"""Thin gRPC clients: one channel per target, domain errors instead of grpc.RpcError."""
from __future__ import annotations

import functools
from typing import Any

import grpc

from loupe_common.errors import from_rpc_error
from loupe_common.grpcserver import CLIENT_OPTIONS


class ServiceClient:
    """Wraps a generated stub so each call raises `LoupeError` and has a deadline.

    Usage: `client = ServiceClient(address, MetadataServiceStub)`, then
    `client.GetProject(request)`.
    """

    def __init__(self, address: str, stub_cls: type, timeout: float = 30.0):
        self.address = address
        self.channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
        self._stub = stub_cls(self.channel)
        self._timeout = timeout

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        @functools.wraps(method)
        def call(request, timeout: float | None = None):
            try:
                return method(request, timeout=timeout or self._timeout)
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None

        return call

    def close(self) -> None:
        self.channel.close()
