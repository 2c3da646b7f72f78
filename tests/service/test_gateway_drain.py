"""The gateway's HTTP server drains on SIGTERM: clients looping on keep-alive connections and a
request in flight all get their answers; the server then stops by itself.

Real waitress on 127.0.0.1 (port 0) serving a small WSGI app: what is tested is the server's
connection handling, which no backend takes part in.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests

from loupe_gateway.serve import GatewayServer

pytestmark = pytest.mark.service


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.5)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def server():
    srv = GatewayServer(app, host="127.0.0.1", port=0, threads=4, drain_seconds=10, idle_seconds=0.5)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    yield srv, thread
    srv.drain()
    thread.join(15)


def test_draining_fails_no_request_of_looping_keep_alive_clients(server):
    srv, thread = server
    url = f"http://127.0.0.1:{srv.port}"
    stop = threading.Event()
    results = {"ok": 0, "closed": 0, "failed": []}
    lock = threading.Lock()

    def loop():
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.post(url + "/classify", data=b"x" * 1000, timeout=10)
                with lock:
                    results["ok"] += r.status_code == 200
                    results["closed"] += r.headers.get("Connection") == "close"
                    if r.status_code != 200:
                        results["failed"].append(r.status_code)
            except requests.ConnectionError:
                # After the drain the port is closed: a new connection is refused, as it is
                # when a pod has gone (Kubernetes no longer routes new connections to it).
                if srv._draining.is_set():
                    return
                raise

    loops = [threading.Thread(target=loop) for _ in range(4)]
    for t in loops:
        t.start()
    slow = {}
    slow_thread = threading.Thread(target=lambda: slow.update(r=requests.get(url + "/slow", timeout=10)))
    time.sleep(0.5)
    slow_thread.start()
    time.sleep(0.2)  # the slow request is in flight when the drain starts
    drain = threading.Thread(target=srv.drain)
    started = time.monotonic()
    drain.start()
    thread.join(15)
    took = time.monotonic() - started
    stop.set()
    for t in loops + [slow_thread]:
        t.join(15)
    assert not thread.is_alive(), "the server did not stop after draining"
    assert results["failed"] == [] and results["ok"] > 20, results
    assert results["closed"] >= 4, results  # each looping client was told to reconnect
    assert slow["r"].status_code == 200 and slow["r"].text == "ok"
    assert 1.0 < took < 10, took  # waited for the slow request, not for the drain limit


def test_an_idle_server_stops_at_once(server):
    srv, thread = server
    started = time.monotonic()
    srv.drain()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
