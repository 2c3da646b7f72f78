"""The metadata server factory, shared by `python -m loupe_metadata` and the service tests."""
from __future__ import annotations

import grpc
from grpc_health.v1 import health
from psycopg_pool import ConnectionPool

from loupe.v1 import metadata_pb2, metadata_pb2_grpc
from loupe_common.grpcserver import create_server
from loupe_metadata.config import MetadataConfig
from loupe_metadata.core import MetadataCore
from loupe_metadata.servicer import MetadataServicer

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name


def open_pool(config: MetadataConfig) -> ConnectionPool:
    """An open pool; waits until PostgreSQL accepts a connection (fails after 30 s)."""
    pool = ConnectionPool(
        config.postgres_dsn,
        min_size=config.pool_min_size,
        max_size=config.pool_max_size,
        open=False,
        name="loupe-metadata",
        # A connection is checked as it is taken from the pool: after PostgreSQL restarted, the
        # pooled connections are dead, and the first request on each would otherwise fail.
        check=ConnectionPool.check_connection,
    )
    pool.open(wait=True, timeout=30.0)
    return pool


def build_server(
    config: MetadataConfig, pool: ConnectionPool | None = None
) -> tuple[grpc.Server, int, health.HealthServicer, ConnectionPool]:
    """Builds the (not yet started) metadata gRPC server on a migrated database.

    Args:
        config: the service configuration; an address with port 0 picks a free port.
        pool: an open pool to use; one is opened from `config.postgres_dsn` when None.
    Returns:
        (server, bound port, health servicer, pool). The caller closes the pool after stopping
        the server.
    """
    pool = pool or open_pool(config)
    servicer = MetadataServicer(MetadataCore(pool))
    try:
        server, port, health_servicer = create_server(
            [lambda s: metadata_pb2_grpc.add_MetadataServiceServicer_to_server(servicer, s)],
            host=config.host,
            port=config.port,
            service_names=[SERVICE_NAME],
        )
    except Exception:
        pool.close()
        raise
    return server, port, health_servicer, pool
