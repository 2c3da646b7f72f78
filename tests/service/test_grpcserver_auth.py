"""grpcserver.create_server's internal auth on a real in-process server, for every call shape
(unary and streaming, so an RPC added as a stream is refused like the rest), and without
`auth=` (a public server) nothing is asked for."""
from __future__ import annotations

import grpc
import pytest

from loupe_common import internal_auth as ia
from loupe_common.grpcserver import create_server

pytestmark = pytest.mark.service

SECRET = "grpcserver-auth-tests"
SERVICE = "loupe.test.Echo"
SHAPES = {
    "Unary": (grpc.unary_unary_rpc_method_handler, lambda req, ctx: req),
    "ServerStream": (grpc.unary_stream_rpc_method_handler, lambda req, ctx: iter([req, req])),
    "ClientStream": (grpc.stream_unary_rpc_method_handler, lambda reqs, ctx: b"".join(reqs)),
    "BidiStream": (grpc.stream_stream_rpc_method_handler, lambda reqs, ctx: (r for r in reqs)),
}

#: What each echo answers to the requests `_call` sends.
ANSWER = {"Unary": b"x", "ServerStream": b"xx", "ClientStream": b"xx", "BidiStream": b"xx"}


def _register(server: grpc.Server) -> None:
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        SERVICE, {name: make(fn) for name, (make, fn) in SHAPES.items()})])


def _server(auth):
    server, port, _ = create_server([_register], auth=auth, service_names=[SERVICE])
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def guarded():
    allow = {SERVICE: ia.table(**{name: (ia.GATEWAY,) for name in SHAPES})}
    server, addr = _server(ia.Policy(SECRET, allow))
    yield addr
    server.stop(None)


@pytest.fixture(scope="module")
def public():
    server, addr = _server(None)
    yield addr
    server.stop(None)


def _call(addr: str, name: str, metadata=()):
    with grpc.insecure_channel(addr) as channel:
        if name == "Unary":
            return channel.unary_unary(f"/{SERVICE}/{name}")(b"x", timeout=5, metadata=metadata)
        if name == "ServerStream":
            return b"".join(channel.unary_stream(f"/{SERVICE}/{name}")(b"x", timeout=5, metadata=metadata))
        if name == "ClientStream":
            return channel.stream_unary(f"/{SERVICE}/{name}")(iter([b"x", b"x"]), timeout=5, metadata=metadata)
        return b"".join(channel.stream_stream(f"/{SERVICE}/{name}")(iter([b"x", b"x"]), timeout=5, metadata=metadata))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_call_shape_is_refused_without_the_right_credential(guarded, name):
    for metadata, code in [((), grpc.StatusCode.UNAUTHENTICATED),
                           (((ia.METADATA_KEY, ia.credential("other", ia.GATEWAY)),), grpc.StatusCode.UNAUTHENTICATED),
                           (((ia.METADATA_KEY, ia.credential(SECRET, ia.TRAINING)),), grpc.StatusCode.PERMISSION_DENIED)]:
        with pytest.raises(grpc.RpcError) as err:
            _call(guarded, name, metadata)
        assert err.value.code() == code, (name, metadata)
    assert _call(guarded, name, ((ia.METADATA_KEY, ia.credential(SECRET, ia.GATEWAY)),)) == ANSWER[name]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_server_without_auth_asks_for_nothing(public, name):
    assert _call(public, name) == ANSWER[name]


def test_an_unknown_method_is_refused_before_it_is_found(guarded):
    with grpc.insecure_channel(guarded) as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(f"/{SERVICE}/Nope")(b"x", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(f"/{SERVICE}/Nope")(
                b"x", timeout=5, metadata=((ia.METADATA_KEY, ia.credential(SECRET, ia.GATEWAY)),))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
