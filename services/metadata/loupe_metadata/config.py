"""The metadata service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common.config import ListenAddress, env_field
from loupe_common.ports import default_addr
from loupe_common.internal_tls import HealthPortConfig, InternalTLSConfig
from loupe_metadata.quotas import Quotas


@dataclass(frozen=True)
class MetadataConfig(ListenAddress, InternalTLSConfig, HealthPortConfig):
    addr: str = env_field("LOUPE_METADATA_ADDR", default_addr("metadata"), "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    postgres_dsn: str = env_field("LOUPE_POSTGRES_DSN", doc="PostgreSQL connection string (required)")
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "logging level")
    pool_min_size: int = env_field("LOUPE_POSTGRES_POOL_MIN", 1, "connections kept open")
    pool_max_size: int = env_field("LOUPE_POSTGRES_POOL_MAX", 10, "most connections at once")
    quota_projects_per_account: int = env_field(
        "LOUPE_QUOTA_PROJECTS_PER_ACCOUNT", Quotas.projects_per_account, "most projects per account (0: no limit)")
    quota_tags_per_project: int = env_field(
        "LOUPE_QUOTA_TAGS_PER_PROJECT", Quotas.tags_per_project, "most tags per project (0: no limit)")
    quota_images_per_project: int = env_field(
        "LOUPE_QUOTA_IMAGES_PER_PROJECT", Quotas.images_per_project, "most images per project (0: no limit)")
    quota_stored_predictions_per_account: int = env_field(
        "LOUPE_QUOTA_STORED_PREDICTIONS_PER_ACCOUNT", Quotas.stored_predictions_per_account,
        "most stored predictions per account (0: no limit); a classification that would store "
        "past it is refused (400 BadRequestExceededQuota), …/nostore still answers")

    def quotas(self) -> Quotas:
        return Quotas(self.quota_projects_per_account, self.quota_tags_per_project,
                      self.quota_images_per_project, self.quota_stored_predictions_per_account)
