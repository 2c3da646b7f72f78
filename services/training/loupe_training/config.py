"""The training service's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

import dataclasses

from loupe_common.config import ListenAddress, env_field
from loupe_common.ports import default_addr
from loupe_common.internal_tls import HealthPortConfig, InternalTLSConfig


@dataclasses.dataclass(frozen=True)
class TrainingConfig(ListenAddress, InternalTLSConfig, HealthPortConfig):
    addr: str = env_field("LOUPE_TRAINING_ADDR", default_addr("training"), "host:port the gRPC server binds")
    metrics_port: int = env_field("LOUPE_METRICS_PORT", 0, "Prometheus /metrics port (0: off)")
    kafka_bootstrap: str = env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    metadata_target: str = env_field("LOUPE_METADATA_TARGET", doc="metadata service host:port")
    storage_target: str = env_field("LOUPE_STORAGE_TARGET", doc="storage service host:port")
    model_cache: str = env_field("LOUPE_MODEL_CACHE", "", "folder for the exported backbone (default ~/.cache/loupe/models)")
    trainer_id: str = env_field("LOUPE_TRAINER_ID", "", "name of this trainer (default host-pid)")
    threads: int = env_field("LOUPE_TRAINING_THREADS", 2, "compute threads for feature extraction")
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "log level")
