"""`python -m loupe_storage`: serves the storage API until SIGTERM."""
from __future__ import annotations

import os
import sys

from loupe_common import config as cfg
from loupe_common import grpcserver
from loupe_storage.config import StorageConfig
from loupe_storage.server import build_server


def main() -> int:
    return grpcserver.run(build_server, cfg.load(StorageConfig, os.environ))


if __name__ == "__main__":
    sys.exit(main())
