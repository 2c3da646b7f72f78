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

Bodies are admitted before they are read (issue 14): waitress reads a whole body, up to 1 GiB,
into a temporary file before it calls the application, so the application cannot refuse a body
unread. Given `admit` (`bodies.admit`), the parser asks it as soon as a request's headers are
in, for a request that has a body: a missing or wrong key, or a declared Content-Length over
the route's cap, is answered at once (by the application, from `bodies.REFUSAL`) without a byte
of the body read, and a chunked body is counted as it arrives and refused once it passes the
cap. A refused request's connection reads no further request: what the client still sends is
dropped, and once the answer is out the connection is shut for writing and closed after
LINGER_SECONDS (or when the client closes it). The key look-up runs on waitress's
I/O thread; answers are cached (`auth.KeyResolver`) and unknown keys are limited per client,
so a look-up costs one metadata call per key and TTL.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import WSGITask
from waitress.utilities import RequestEntityTooLarge

from loupe_gateway import bodies

log = logging.getLogger("loupe_gateway")


class _AdmittingParser(HTTPRequestParser):
    """Asks the server's `admit` once the headers of a request with a body are in, before
    reading the body; counts a chunked body against the cap `admit` gave."""

    def __init__(self, adj, channel: "_DrainingChannel"):
        super().__init__(adj)
        self.channel = channel
        self.limit: bodies.Limit | None = None
        self.refusal: Exception | None = None

    def received(self, data) -> int:
        if self.completed:
            return 0
        in_headers = not self.headers_finished
        consumed = super().received(data)
        if in_headers and self.headers_finished:
            # A body waitress refuses itself (its 1 GiB cap) is answered as the route's too.
            if not self.empty and (self.error is None and self.body_rcv is not None
                                   or isinstance(self.error, RequestEntityTooLarge)):
                self._admit()
        elif (self.refusal is None and self.limit is not None and self.body_rcv is not None
              and len(self.body_rcv) > self.limit.bytes):
            # A chunked body (a declared length was checked already) past its cap.
            self._refuse(self.limit.refusal())
        if self.refusal is not None:
            return len(data)  # the rest of what came is the refused body: dropped
        return consumed

    def _admit(self) -> None:
        admit = self.channel.server.admit
        if admit is None:
            return
        try:
            self.limit, refusal = admit(WSGITask(self.channel, self).get_environment())
        except Exception:  # the application admits it then (bodies.init_app)
            log.exception("admitting %s %s", self.command, self.path)
            return
        if refusal is not None:
            self._refuse(refusal)

    def _refuse(self, refusal: Exception) -> None:
        self.refusal, self.error = refusal, None
        self.completed = True
        # waitress would send `100 Continue` for it, and reopen the request
        self.expect_continue = False
        self.channel.discarding = True


class _DrainingTask(WSGITask):
    """Adds `Connection: close` to responses once the server drains (PEP 3333 leaves this
    hop-by-hop header to the server: a WSGI application may not set it), and to the answer
    to a refused body (the rest of that body is never read)."""

    def build_response_header(self):
        if self.channel.server.draining.is_set() or getattr(self.request, "refusal", None):
            self.set_close_on_finish()
        return super().build_response_header()

    def get_environment(self):
        environ = super().get_environment()
        request = self.request
        if getattr(request, "limit", None) is not None:
            environ[bodies.ADMITTED] = True
        if getattr(request, "refusal", None) is not None:
            environ[bodies.REFUSAL] = request.refusal
        return environ


#: How long the connection of a refused body goes on reading, and dropping, what the client
#: still sends once the answer is out. Closing a socket with unread bytes sends a reset, which
#: can destroy the answer before the client has read it (a client sends the whole body before
#: it reads: requests, the SDK); so the server closes its side for writing and drains a while.
LINGER_SECONDS = 2.0


class _DrainingChannel(HTTPChannel):
    task_class = _DrainingTask
    #: Set once a request's body was refused: nothing more is read from the connection.
    discarding = False
    #: Set (a monotonic deadline) once the answer to a refused body is out: see LINGER_SECONDS.
    lingering_until: float | None = None

    def parser_class(self, adj):  # waitress calls `self.parser_class(self.adj)`
        return _AdmittingParser(adj, self)

    def received(self, data):
        if self.discarding:
            return False
        return super().received(data)

    def readable(self):
        if self.lingering_until is not None:
            if time.monotonic() > self.lingering_until:
                self.will_close = True  # handle_write closes it
                return False
            return True
        return super().readable()

    def handle_close(self):
        if self.discarding and self.lingering_until is None and self.connected:
            self.lingering_until = time.monotonic() + LINGER_SECONDS
            self.will_close = self.close_when_flushed = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
                return
            except OSError:
                pass
        super().handle_close()


class GatewayServer:
    """A waitress server for `app` that drains instead of dropping connections.

    Args:
        app: the WSGI application.
        host, port: where to listen (port 0 picks a free one: `port` tells which).
        threads: waitress worker threads.
        drain_seconds: the longest `drain()` waits for requests in flight (the chart's
            termination grace period, 30 s, minus its preStop sleep, 5 s, leaves room for 20).
        idle_seconds: how long a connection must have been idle before draining closes it.
        admit: environ (of a request's line and headers) -> (its body's `bodies.Limit`, None
            or the error to answer unread), asked before a body is read (the module
            docstring); None: bodies are read as waitress reads them.
    """

    def __init__(self, app, *, host: str, port: int, threads: int, drain_seconds: float = 20.0,
                 idle_seconds: float = 1.0,
                 admit: Callable[[dict], tuple[bodies.Limit, Exception | None]] | None = None):
        self._draining = threading.Event()
        self.drain_seconds = drain_seconds
        self.idle_seconds = idle_seconds
        self._server = create_server(app, host=host, port=port, threads=threads, ident="loupe-gateway")
        self._server.channel_class = _DrainingChannel
        self._server.draining = self._draining
        self._server.admit = admit

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
