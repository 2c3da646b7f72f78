"""The metadata service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common.config import env_field


@dataclass(frozen=True)
class MetadataConfig:
    addr: str = env_field("LOUPE_METADATA_ADDR", "127.0.0.1:50051", "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    postgres_dsn: str = env_field("LOUPE_POSTGRES_DSN", doc="PostgreSQL connection string (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "logging level")
    pool_min_size: int = env_field("LOUPE_POSTGRES_POOL_MIN", 1, "connections kept open")
    pool_max_size: int = env_field("LOUPE_POSTGRES_POOL_MAX", 10, "most connections at once")

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])
