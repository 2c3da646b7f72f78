"""The metadata server factory, shared by `python -m loupe_metadata` and the service tests."""
from __future__ import annotations

import dataclasses

from psycopg_pool import ConnectionPool

from loupe.v1 import metadata_pb2, metadata_pb2_grpc
from loupe_common import internal_tls
from loupe_common.grpcserver import BuiltServer, create_server
from loupe_common.internal_auth import Policy
from loupe_metadata import access
from loupe_metadata.config import MetadataConfig
from loupe_metadata.core import MetadataCore
from loupe_metadata.servicer import MetadataServicer

SERVICE_NAME = metadata_pb2.DESCRIPTOR.services_by_name["MetadataService"].full_name


@dataclasses.dataclass
class MetadataDeps:
    """What the metadata service talks to: an open PostgreSQL pool on a migrated database."""

    pool: ConnectionPool


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


def build_server(config: MetadataConfig, deps: MetadataDeps | None = None) -> BuiltServer:
    """Builds the (not yet started) metadata gRPC server on a migrated database.

    Args:
        config: the service configuration; an address with port 0 picks a free port.
        deps: the pool to use (the caller closes it); None opens one from `config.postgres_dsn`,
            which the returned server's `stop` closes.
    Returns:
        the bound server, not started.
    """
    owned = deps is None
    deps = deps or MetadataDeps(open_pool(config))
    try:
        server, port, health_servicer = create_server(
            [lambda s: metadata_pb2_grpc.add_MetadataServiceServicer_to_server(
                MetadataServicer(MetadataCore(deps.pool, config.quotas())), s)],
            host=config.host,
            port=config.port,
            service_names=[SERVICE_NAME],
            auth=Policy(config.internal_secret, access.ALLOW),
            tls=internal_tls.load(config), health_port=config.health_port,
        )
    except Exception:
        if owned:
            deps.pool.close()
        raise
    return BuiltServer(server, port, health_servicer, "metadata",
                       after_stop=deps.pool.close if owned else lambda: None)
