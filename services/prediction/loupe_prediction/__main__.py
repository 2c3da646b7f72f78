"""`python -m loupe_prediction`: serves classification until SIGTERM."""
from __future__ import annotations

import os
import sys

from loupe_common import config as cfg
from loupe_common import grpcserver
from loupe_prediction.config import PredictionConfig
from loupe_prediction.server import build_server


def main() -> int:
    return grpcserver.run(build_server, cfg.load(PredictionConfig, os.environ))


if __name__ == "__main__":
    sys.exit(main())
