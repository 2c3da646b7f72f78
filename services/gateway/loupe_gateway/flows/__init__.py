"""What the gateway does between parsing a request and serializing the answer, without Flask.

Each module serves the blueprint of the same name (`api/<name>.py`) and the public gRPC API
(`loupe_gateway/grpcapi`): its functions take the backends (`loupe_gateway.clients.Backends`,
or a stand-in in unit tests), the caller's account and parsed arguments, call the backends,
and return loupe.v1 messages or plain values that `loupe_gateway.serialize` turns into JSON
and `grpcapi.convert` into public messages. A view or RPC that only passes one call through
(get/list projects, tags, image tags) calls the backends itself.
"""
from __future__ import annotations

from loupe_gateway.clients import Backends


def tag_types(backends: Backends, account_id: str, project_id: str) -> dict[str, str]:
    """Tag id -> "Regular" / "Negative" of a project's tags, for the `tagType` of predictions."""
    return {t.id: t.type for t in backends.list_tags(account_id, project_id)}
