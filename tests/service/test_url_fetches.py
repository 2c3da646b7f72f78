"""Safe server-side URL fetching against a real HTTP server on 127.0.0.1 in a thread: the
Host header, the loopback refusal, size, time and redirect limits (the pure address checks are
in tests/unit/test_gateway_urlfetch.py)."""
from __future__ import annotations

import http.server
import io
import threading
import time

import pytest
from PIL import Image

from loupe_gateway import urlfetch
from loupe_gateway.urlfetch import FetchError, UrlFetcher

pytestmark = pytest.mark.service


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              length: bool = True):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, query = self.path.partition("?")
        server = self.server
        server.hits.append((self.path, self.headers.get("Host")))
        if path == "/img.png":
            self._send(200, PNG, {"Content-Type": "image/png"})
        elif path.startswith("/bytes/"):  # /bytes/<n>[?nolength]
            n = int(path.rsplit("/", 1)[1])
            self._send(200, b"x" * n, {"Content-Type": "image/png"}, length=query != "nolength")
        elif path.startswith("/redirect/"):  # /redirect/<n>: n redirects, then the image
            n = int(path.rsplit("/", 1)[1])
            if n <= 0:
                self._send(200, PNG, {"Content-Type": "image/png"})
            else:
                self._send(302, b"", {"Location": f"/redirect/{n - 1}"})
        elif path == "/to":
            self._send(302, b"", {"Location": query})
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
        elif path == "/hang":
            time.sleep(1.5)
        else:
            self._send(404, b"no")


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the fetcher hanging up on purpose (limits) is not an error here


@pytest.fixture(scope="module")
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def allowed(**kw) -> UrlFetcher:
    return UrlFetcher(allow="127.0.0.1/32", **kw)


# --- fetching from a real local server ---------------------------------------------------

def test_fetches_an_image_with_the_host_header(server, base):
    got = allowed().fetch(f"{base}/img.png", 1000)
    assert got.data == PNG and got.content_type == "image/png"
    assert server.hits[-1] == ("/img.png", f"127.0.0.1:{server.server_address[1]}")


def test_loopback_is_refused_without_the_allow_list_and_nothing_is_sent(server, base):
    before = len(server.hits)
    with pytest.raises(FetchError, match="loopback"):
        UrlFetcher().fetch(f"{base}/img.png", 1000)
    assert len(server.hits) == before


def test_size_limit_at_the_edge(base):
    assert len(allowed().fetch(f"{base}/bytes/100", 100).data) == 100
    with pytest.raises(FetchError, match="too large") as err:
        allowed().fetch(f"{base}/bytes/101", 100)
    assert err.value.reason == urlfetch.TOO_LARGE
    # Without Content-Length the body is streamed and cut at limit + 1.
    assert len(allowed().fetch(f"{base}/bytes/100?nolength", 100).data) == 100
    with pytest.raises(FetchError, match="too large"):
        allowed().fetch(f"{base}/bytes/5000000?nolength", 100)


def test_redirects_are_followed_up_to_the_limit(base):
    assert allowed().fetch(f"{base}/redirect/3", 1000).data == PNG
    with pytest.raises(FetchError, match="too many redirects") as err:
        allowed().fetch(f"{base}/redirect/4", 1000)
    assert err.value.reason == urlfetch.REDIRECTS
    with pytest.raises(FetchError, match="too many redirects"):
        allowed(max_redirects=0).fetch(f"{base}/redirect/1", 1000)


def test_every_redirect_hop_is_checked(server, base):
    port = server.server_address[1]
    # The first hop is allowed by host name; its redirect to 127.0.0.1 is not.
    fetcher = UrlFetcher(allow="localhost")
    with pytest.raises(FetchError, match="loopback"):
        fetcher.fetch(f"http://localhost:{port}/to?http://127.0.0.1:{port}/img.png", 1000)
    with pytest.raises(FetchError, match="link-local"):
        allowed().fetch(f"{base}/to?http://169.254.169.254/latest/meta-data/", 1000)
    with pytest.raises(FetchError, match="http or https"):
        allowed().fetch(f"{base}/to?file:///etc/passwd", 1000)


def test_total_timeout_stops_a_slow_drip(base):
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out") as err:
        allowed(total_timeout=0.5).fetch(f"{base}/slow", 1000)
    assert err.value.reason == urlfetch.TIMEOUT
    assert time.monotonic() - started < 2.0


def test_timeout_while_waiting_for_headers(base):
    with pytest.raises(FetchError, match="timed out"):
        allowed(total_timeout=0.3).fetch(f"{base}/hang", 1000)


def test_http_errors_and_refused_connections(base):
    with pytest.raises(FetchError, match="HTTP 404") as err:
        allowed().fetch(f"{base}/missing.png", 1000)
    assert err.value.reason == urlfetch.STATUS
    with pytest.raises(FetchError, match="could not connect") as err:
        allowed().fetch("http://127.0.0.1:9/x.png", 1000)  # discard port, nothing listens
    assert err.value.reason == urlfetch.CONNECT
