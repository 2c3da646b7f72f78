"""`python -m loupe_storage`: serves the storage API until SIGTERM."""
from __future__ import annotations

import logging
import os

from minio import Minio

from loupe.v1 import storage_pb2_grpc
from loupe_common import config as cfg
from loupe_common.grpcserver import create_server, serve_until_signal, setup_logging, start_metrics
from loupe_storage.config import StorageConfig
from loupe_storage.core import Store
from loupe_storage.servicer import StorageServicer

log = logging.getLogger("loupe_storage")


def build_server(config: StorageConfig):
    """Returns (server, port, health, store) — not started; port 0 in the address picks one."""
    client = Minio(
        config.s3_endpoint,
        access_key=config.s3_access_key,
        secret_key=config.s3_secret_key,
        secure=config.s3_secure,
    )
    store = Store(client, config.s3_bucket)
    store.ensure_bucket()
    host, _, port = config.addr.rpartition(":")
    server, bound, health = create_server(
        [lambda s: storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(store), s)],
        host=host, port=int(port), service_names=["loupe.v1.StorageService"],
    )
    return server, bound, health, store


def main() -> None:
    config = cfg.load(StorageConfig, os.environ)
    setup_logging(config.log_level)
    server, port, health, _ = build_server(config)
    start_metrics(config.metrics_port, config.addr.rpartition(":")[0])
    log.info("storage service on port %d (bucket %s at %s)", port, config.s3_bucket, config.s3_endpoint)
    serve_until_signal(server, health)


if __name__ == "__main__":
    main()
