"""The metadata service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common.config import ListenAddress, env_field
from loupe_common.ports import default_addr


@dataclass(frozen=True)
class MetadataConfig(ListenAddress):
    addr: str = env_field("LOUPE_METADATA_ADDR", default_addr("metadata"), "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    postgres_dsn: str = env_field("LOUPE_POSTGRES_DSN", doc="PostgreSQL connection string (required)")
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "logging level")
    pool_min_size: int = env_field("LOUPE_POSTGRES_POOL_MIN", 1, "connections kept open")
    pool_max_size: int = env_field("LOUPE_POSTGRES_POOL_MAX", 10, "most connections at once")
