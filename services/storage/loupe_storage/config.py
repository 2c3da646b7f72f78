"""The storage service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

import dataclasses

from loupe_common.config import ListenAddress, env_field
from loupe_common.ports import default_addr
from loupe_common.internal_tls import HealthPortConfig, InternalTLSConfig


@dataclasses.dataclass(frozen=True)
class StorageConfig(ListenAddress, InternalTLSConfig, HealthPortConfig):
    addr: str = env_field("LOUPE_STORAGE_ADDR", default_addr("storage"), "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    s3_endpoint: str = env_field("LOUPE_S3_ENDPOINT", doc="MinIO / S3 host:port")
    s3_access_key: str = env_field("LOUPE_S3_ACCESS_KEY", doc="S3 access key")
    s3_secret_key: str = env_field("LOUPE_S3_SECRET_KEY", doc="S3 secret key")
    s3_bucket: str = env_field("LOUPE_S3_BUCKET", "loupe", "bucket holding everything")
    s3_secure: bool = env_field("LOUPE_S3_SECURE", False, "use TLS to reach S3")
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "log level")
