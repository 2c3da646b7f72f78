"""The gateway's HTTP server asks `admit` before it reads a body: a refused request is answered
without its body read, a chunked body is refused once past its cap, and nothing after a refused
body is taken as a request.

Real waitress on 127.0.0.1 (port 0) serving a small WSGI app with a stand-in `admit` (what is
tested is the server's reading of bodies; tests/e2e/test_uploads.py covers the gateway's own
`bodies.admit` through the whole stack).
"""
from __future__ import annotations

import socket
import threading
import time

import pytest

from loupe_common.errors import BadRequest
from loupe_gateway import bodies
from loupe_gateway.serve import GatewayServer

pytestmark = pytest.mark.service

LIMIT = bodies.Limit(100_000, "BadRequestImageSizeBytes", "one image")


def app(environ, start_response):
    refusal = environ.get(bodies.REFUSAL)
    if refusal is not None:
        body = f"refused {refusal.code}".encode()
        start_response("400 Bad Request", [("Content-Length", str(len(body)))])
        return [body]
    data = environ["wsgi.input"].read()
    body = f"read {len(data)} admitted={bool(environ.get(bodies.ADMITTED))}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def admit(environ):
    if environ.get("HTTP_X_KEY") != "good":
        return LIMIT, BadRequest("no key", "Unauthorized")
    declared = int(environ.get("CONTENT_LENGTH") or 0)
    if declared > LIMIT.bytes:
        return LIMIT, LIMIT.refusal(declared)
    return LIMIT, None


@pytest.fixture
def port():
    srv = GatewayServer(app, host="127.0.0.1", port=0, threads=2, admit=admit, drain_seconds=2)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    yield srv.port
    srv.drain()
    thread.join(10)


def _exchange(port: int, request: bytes, wait: float = 10) -> bytes:
    """Sends `request`, returns all the server sends until it closes (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out


def test_refused_from_the_headers_before_the_body_comes(port):
    started = time.monotonic()
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: bad\r\nContent-Length: 999999999\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and out.endswith(b"refused Unauthorized")
    assert b"Connection: close" in out
    assert time.monotonic() - started < 5  # answered, and closed, with no body sent
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: good\r\nContent-Length: 100001\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and out.endswith(b"refused BadRequestImageSizeBytes")


def test_over_waitress_own_cap_is_answered_as_the_route(port):
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: good\r\nContent-Length: %d\r\n\r\n" % (2 << 30))
    assert out.endswith(b"refused BadRequestImageSizeBytes"), out


def test_expect_continue_is_not_continued_when_refused(port):
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: bad\r\nExpect: 100-continue\r\n"
                          b"Content-Length: 5000\r\n\r\n")
    assert b"100 Continue" not in out and out.endswith(b"refused Unauthorized")


def test_an_admitted_body_is_read(port):
    body = b"x" * 50_000
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: good\r\nConnection: close\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert out.endswith(b"read 50000 admitted=True"), out[-200:]


def _chunked(total: int, size: int = 10_000) -> bytes:
    out = b""
    for start in range(0, total, size):
        n = min(size, total - start)
        out += b"%x\r\n" % n + b"y" * n + b"\r\n"
    return out + b"0\r\n\r\n"


def test_a_chunked_body_is_counted_against_the_cap(port):
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: good\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    assert _exchange(port, head + _chunked(LIMIT.bytes)).endswith(b"read 100000 admitted=True")
    out = _exchange(port, head + _chunked(LIMIT.bytes + 1))
    assert out.startswith(b"HTTP/1.1 400") and out.endswith(b"refused BadRequestImageSizeBytes"), out


def test_nothing_after_a_refused_body_is_taken_as_a_request(port):
    """The refused body's bytes, and a request pipelined after them, are never parsed: one
    answer, then the connection closes."""
    smuggled = b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: good\r\nContent-Length: 0\r\n\r\n"
    out = _exchange(port, b"POST /x HTTP/1.1\r\nHost: t\r\nX-Key: bad\r\nContent-Length: 50\r\n\r\n"
                          + smuggled + b"z" * (50 - len(smuggled)) + smuggled)
    assert out.count(b"HTTP/1.1") == 1 and out.endswith(b"refused Unauthorized"), out


def test_a_request_without_a_body_is_not_asked_about(port):
    """`admit` is for bodies: a bodiless request goes to the app as it is (which checks keys)."""
    out = _exchange(port, b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"read 0 admitted=False"), out
