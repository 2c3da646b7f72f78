"""`python -m loupe_gateway`: serves the REST API with waitress until SIGTERM/SIGINT, then drains."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from loupe_common.config import load
from loupe_common.kafka import security_from_env
from loupe_common.grpcserver import setup_logging
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig
from loupe_gateway.serve import GatewayServer

log = logging.getLogger("loupe_gateway")


def main() -> int:
    config = load(GatewayConfig, os.environ)
    # The producer is made at the first training request; a Kafka setting it would refuse
    # stops the gateway now instead.
    security_from_env(os.environ)
    setup_logging(config.log_level)
    app = create_app(config)
    server = GatewayServer(app, host=config.host, port=config.port, threads=config.threads)

    def _stop(signum, _frame):
        log.info("signal %s: draining", signum)
        threading.Thread(target=server.drain, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("gateway listening on http://%s:%s", config.host, server.port)
    try:
        server.serve()
    finally:
        # Only now: requests in flight until the drain ended still used the backends.
        app.extensions["loupe"].backends.close()
    log.info("gateway stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
