"""The prediction service's inference client over a real HTTP server on loopback: one kept-alive
connection per thread, a connection the server closed while idle replaced without an error."""
from __future__ import annotations

import http.server
import threading

import numpy as np
import pytest

from loupe_common.errors import BadRequest, Unavailable
from loupe_model.serving import encode_embeddings
from loupe_prediction.torchserve import TorchServeClient

pytestmark = pytest.mark.service

EMBEDDING = np.arange(8, dtype=np.float32)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.connections = 0
        self.drop_after_answer = False
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def setup(self):
        super().setup()
        self.server.connections += 1

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status, out = (400, b"bad") if body == b"not an image" else (200, encode_embeddings(EMBEDDING))
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        if self.server.drop_after_answer:  # as a server whose idle timeout ends the connection
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(server) -> TorchServeClient:
    base = f"http://127.0.0.1:{server.server_address[1]}"
    return TorchServeClient(base, base, "backbone", timeout=5)


def test_calls_of_one_thread_share_one_connection(server):
    client = _client(server)
    for _ in range(5):
        assert np.array_equal(client.embed(b"jpeg"), EMBEDDING)
    assert server.connections == 1


def test_a_connection_the_server_closed_is_replaced(server):
    client = _client(server)
    server.drop_after_answer = True
    for _ in range(3):
        assert np.array_equal(client.embed(b"jpeg"), EMBEDDING)
    assert server.connections == 3


def test_each_thread_has_its_own_connection(server):
    client = _client(server)
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        for _ in range(3):
            client.embed(b"jpeg")
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert server.connections == 4


def test_refusals_and_an_unreachable_server_are_domain_errors(server):
    client = _client(server)
    with pytest.raises(BadRequest):
        client.embed(b"not an image")
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    gone = TorchServeClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}", "backbone", timeout=2)
    with pytest.raises(Unavailable):
        gone.embed(b"jpeg")
