"""`python -m loupe_gateway`: serves the REST API with waitress and the public gRPC API
(grpcapi, on LOUPE_GATEWAY_GRPC_PORT) until SIGTERM/SIGINT, then drains both; runs the
reconciler of the training hand-off (reconciler.py) beside them."""
from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading

from loupe_common.config import load
from loupe_common.kafka import security_from_env
from loupe_common.grpcserver import setup_logging
from loupe_gateway import bodies, orphans, reconciler
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.grpcapi.server import build_server
from loupe_gateway.grpcapi.servicer import ApiContext
from loupe_gateway.serve import GatewayServer

log = logging.getLogger("loupe_gateway")


def main() -> int:
    config = load(GatewayConfig, os.environ)
    # The producer is made at the first training request; a Kafka setting it would refuse
    # stops the gateway now instead.
    security_from_env(os.environ)
    setup_logging(config.log_level)
    app = create_app(config)
    server = GatewayServer(app, host=config.host, port=config.port, threads=config.threads,
                           admit=functools.partial(bodies.admit, app))
    public = None
    if config.grpc_port:
        loupe = app.extensions["loupe"]
        # The REST app's backends, key cache and rate limiter: one budget per key on both.
        public = build_server(
            ApiContext(config, loupe.backends, loupe.keys, app.extensions["loupe.ratelimit"]),
            config.host, config.grpc_port)

    signalled, grpc_stopped = threading.Event(), threading.Event()

    def _stop_grpc(grace: float | None) -> None:
        # Health NOT_SERVING, then calls in flight get the same grace as HTTP requests.
        if public is not None and not grpc_stopped.is_set():
            public.stop(grace)
        grpc_stopped.set()

    def _stop(signum, _frame):
        log.info("signal %s: draining", signum)
        signalled.set()
        threading.Thread(target=_stop_grpc, args=(server.drain_seconds,), name="grpc-stop",
                         daemon=True).start()
        threading.Thread(target=server.drain, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("gateway listening on http://%s:%s", config.host, server.port)
    if public is not None:
        public.start()
        log.info("public gRPC API listening on %s:%d", config.host, public.port)
    reconciling, reconciler_thread = reconciler.start(app.extensions["loupe"].backends, config)
    sweep_thread = orphans.start(app.extensions["loupe"].backends, config, reconciling)
    publishing, publication_threads = app.extensions["loupe"].backends.start_publications()
    try:
        server.serve()
    finally:
        reconciling.set()
        if signalled.is_set():  # the gRPC calls in flight end within the same grace
            grpc_stopped.wait(server.drain_seconds + 5)
        _stop_grpc(0)
        for thread in (reconciler_thread, sweep_thread):
            if thread is not None:
                thread.join(timeout=10)
        publishing.set()  # the announcer sends what is queued first (Kafka up)
        for thread in publication_threads:
            thread.join(timeout=10)
        # Only now: requests in flight until the drain ended still used the backends.
        app.extensions["loupe"].backends.close()
    log.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
