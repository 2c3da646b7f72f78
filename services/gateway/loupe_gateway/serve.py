"""The gateway's HTTP server: waitress, drained on SIGTERM so that no client sees a broken request.

Closing waitress's server closes every connection at once, requests in flight included, and
the gRPC channels closed after it fail the requests still running ("Channel closed!"). A rolling
update must fail nothing, so `drain()`:

1. stops accepting connections (Kubernetes has already taken the pod out of its Service's
   endpoints by then: the chart's preStop sleep);
2. answers every further request with `Connection: close`, so keep-alive clients reconnect,
   to another replica, after their next response;
3. waits until no connection has a request in flight or unsent bytes, and each has been idle
   a moment (a client in a loop sends its next request on the old connection within
   milliseconds, and gets that `Connection: close`), or until `drain_seconds` have passed;
4. closes what is left, which ends `serve()`; the caller then closes the backends.
"""
from __future__ import annotations

import logging
import threading
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import WSGITask

log = logging.getLogger("loupe_gateway")


class _DrainingTask(WSGITask):
    """Adds `Connection: close` to responses once the server drains (PEP 3333 leaves this
    hop-by-hop header to the server: a WSGI application may not set it)."""

    def build_response_header(self):
        if self.channel.server.draining.is_set():
            self.set_close_on_finish()
        return super().build_response_header()


class _DrainingChannel(HTTPChannel):
    task_class = _DrainingTask


class GatewayServer:
    """A waitress server for `app` that drains instead of dropping connections.

    Args:
        app: the WSGI application.
        host, port: where to listen (port 0 picks a free one: `port` tells which).
        threads: waitress worker threads.
        drain_seconds: the longest `drain()` waits for requests in flight (the chart's
            termination grace period, 30 s, minus its preStop sleep, 5 s, leaves room for 20).
        idle_seconds: how long a connection must have been idle before draining closes it.
    """

    def __init__(self, app, *, host: str, port: int, threads: int, drain_seconds: float = 20.0,
                 idle_seconds: float = 1.0):
        self._draining = threading.Event()
        self.drain_seconds = drain_seconds
        self.idle_seconds = idle_seconds
        self._server = create_server(app, host=host, port=port, threads=threads, ident="loupe-gateway")
        self._server.channel_class = _DrainingChannel
        self._server.draining = self._draining

    @property
    def port(self) -> int:
        return self._server.effective_port

    def serve(self) -> None:
        """Serves until `drain()` has finished, then stops the worker threads."""
        self._server.run()
        self._server.task_dispatcher.shutdown()

    def drain(self) -> None:
        """Drains and stops the server (see the module docstring); callable from any thread."""
        if self._draining.is_set():
            return
        self._draining.set()
        server = self._server
        server.trigger.pull_trigger(lambda: wasyncore.dispatcher.close(server))  # stop listening
        deadline = time.monotonic() + self.drain_seconds
        while True:
            now = time.time()
            busy = [c for c in list(server.active_channels.values())
                    if c.requests or c.total_outbufs_len or now - c.last_activity < self.idle_seconds]
            if not busy:
                break
            if time.monotonic() > deadline:
                log.warning("drain: %d connection(s) still busy after %.0f s, closing them", len(busy),
                            self.drain_seconds)
                break
            time.sleep(0.05)
        server.trigger.pull_trigger(self._close_all)

    def _close_all(self) -> None:
        # Runs in the server's loop: with its map empty (the trigger included) the loop ends.
        for channel in list(self._server._map.values()):
            channel.close()
