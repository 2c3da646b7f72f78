"""`python -m loupe_training`: a trainer (Kafka consumer) with a gRPC health/describe API."""
from __future__ import annotations

import os
import sys

from loupe_common import config as cfg
from loupe_common import grpcserver
from loupe_training.config import TrainingConfig
from loupe_training.server import build_server


def main() -> int:
    return grpcserver.run(build_server, cfg.load(TrainingConfig, os.environ))


if __name__ == "__main__":
    sys.exit(main())
