"""The prediction service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

import dataclasses

from loupe_common.config import ListenAddress, env_field
from loupe_common.ports import default_addr
from loupe_common.internal_tls import HealthPortConfig, InternalTLSConfig


@dataclasses.dataclass(frozen=True)
class PredictionConfig(ListenAddress, InternalTLSConfig, HealthPortConfig):
    addr: str = env_field("LOUPE_PREDICTION_ADDR", default_addr("prediction"), "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    inference_url: str = env_field("LOUPE_TORCHSERVE_INFERENCE_URL", doc="TorchServe inference API base URL")
    management_url: str = env_field("LOUPE_TORCHSERVE_MANAGEMENT_URL", doc="TorchServe management API base URL")
    kafka_bootstrap: str = env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    metadata_target: str = env_field("LOUPE_METADATA_TARGET", doc="metadata service host:port")
    storage_target: str = env_field("LOUPE_STORAGE_TARGET", doc="storage service host:port")
    backbone: str = env_field("LOUPE_BACKBONE", "lite0", "backbone served by TorchServe")
    batch_size: int = env_field("LOUPE_TORCHSERVE_BATCH_SIZE", 8, "TorchServe dynamic batch size")
    max_batch_delay_ms: int = env_field("LOUPE_TORCHSERVE_MAX_BATCH_DELAY_MS", 1, "TorchServe batch wait")
    head_cache_size: int = env_field("LOUPE_HEAD_CACHE_SIZE", 1024, "iteration heads kept in memory")
    record_timeout_s: float = env_field(
        "LOUPE_RECORD_TIMEOUT_S", 5.0,
        "how long a stored classification waits for Kafka to take its record before it fails with 503")
    record_predictions: bool = env_field("LOUPE_RECORD_PREDICTIONS", True, "run the stored-prediction recorder")
    prediction_retention_days: float = env_field(
        "LOUPE_PREDICTION_RETENTION_DAYS", 30.0,
        "stored predictions older than this are deleted, as on Custom Vision (0: kept forever)")
    retention_interval_s: float = env_field(
        "LOUPE_PREDICTION_RETENTION_INTERVAL_S", 3600.0, "time between retention passes")
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "log level")
