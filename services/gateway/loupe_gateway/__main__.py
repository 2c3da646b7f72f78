"""`python -m loupe_gateway`: serves the REST API with waitress until SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import os
import signal
import sys

from waitress.server import create_server

from loupe_common.config import load
from loupe_common.grpcserver import setup_logging
from loupe_gateway.app import create_app
from loupe_gateway.config import GatewayConfig

log = logging.getLogger("loupe_gateway")


def main() -> int:
    config = load(GatewayConfig, os.environ)
    setup_logging(config.log_level)
    app = create_app(config)
    server = create_server(app, host=config.host, port=config.port, threads=config.threads,
                           ident="loupe-gateway")

    def _stop(signum, _frame):
        log.info("signal %s: stopping", signum)
        # Closing the listening socket ends `run()`; waitress lets in-flight requests finish.
        server.close()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("gateway listening on http://%s:%s", config.host, server.effective_port)
    try:
        server.run()
    except OSError:
        pass  # the socket map was closed by the signal handler
    finally:
        app.extensions["loupe"].backends.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
