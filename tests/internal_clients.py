"""Clients of the internal gRPC servers for tests, calling each RPC as a role allowed to call it.

A test that drives a service the way several of Loupe's services do (the gateway sets up a
project, a trainer reads its training set) calls through `ByRole`: each method goes out with
the credential of the first role in `prefer` that the server's allowlist names for it, so the
test also proves each role's allowlist is enough for what that role does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from loupe_common import internal_auth
from loupe_common.clients import ServiceClient


class ByRole:
    """A ServiceClient per role for one server; attribute access picks the role per method.

    Args:
        address: the server's host:port.
        stub_cls: its generated stub class.
        credentials: role -> credential (the `credentials` fixture).
        allow: the server's allowlist (its `access.ALLOW`).
        prefer: roles in order of preference.
    """

    def __init__(self, address: str, stub_cls: type, credentials: Mapping[str, str],
                 allow: Mapping[str, Mapping[str, frozenset[str]]],
                 prefer: Sequence[str] = (internal_auth.GATEWAY, internal_auth.TRAINING,
                                          internal_auth.PREDICTION), timeout: float = 30.0):
        (self._methods,) = allow.values()
        self._prefer = prefer
        self._clients = {role: ServiceClient(address, stub_cls, timeout=timeout, credential=cred)
                         for role, cred in credentials.items()}

    def as_role(self, role: str) -> ServiceClient:
        return self._clients[role]

    def __getattr__(self, name: str):
        allowed = self._methods.get(name, frozenset())
        role = next((r for r in self._prefer if r in allowed), None)
        if role is None:
            raise AttributeError(f"no role may call {name}")
        return getattr(self._clients[role], name)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
