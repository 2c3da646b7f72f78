"""The gateway's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common.config import env_field


@dataclass(frozen=True)
class GatewayConfig:
    host: str = env_field("LOUPE_GATEWAY_HOST", "127.0.0.1", "address the HTTP server binds")
    port: int = env_field("LOUPE_GATEWAY_PORT", 8080, "HTTP port (REST API, /healthz, /metrics)")
    metadata_target: str = env_field("LOUPE_METADATA_TARGET", doc="host:port of the metadata service")
    storage_target: str = env_field("LOUPE_STORAGE_TARGET", doc="host:port of the storage service")
    prediction_target: str = env_field(
        "LOUPE_PREDICTION_TARGET", doc="host:port of the prediction service"
    )
    kafka_bootstrap: str = env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    url_signing_secret: str = env_field(
        "LOUPE_URL_SIGNING_SECRET",
        doc="HMAC secret that signs the image URIs returned in responses (required)",
    )
    url_ttl_seconds: int = env_field(
        "LOUPE_URL_TTL_SECONDS", 3600, "how long a signed image URI stays valid"
    )
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "logging level")
    threads: int = env_field("LOUPE_GATEWAY_THREADS", 16, "waitress worker threads")
    # Limits, with Custom Vision's documented defaults.
    max_training_image_bytes: int = env_field(
        "LOUPE_MAX_TRAINING_IMAGE_BYTES", 6291456, "largest training image (6 MB)"
    )
    max_prediction_image_bytes: int = env_field(
        "LOUPE_MAX_PREDICTION_IMAGE_BYTES", 4194304, "largest prediction image (4 MB)"
    )
    max_batch_images: int = env_field("LOUPE_MAX_BATCH_IMAGES", 64, "most images per upload")
    max_batch_tags: int = env_field("LOUPE_MAX_BATCH_TAGS", 20, "most tags per upload")
    max_image_side: int = env_field("LOUPE_MAX_IMAGE_SIDE", 10240, "longest image side in px")
    min_images_per_tag: int = env_field(
        "LOUPE_MIN_IMAGES_PER_TAG", 5, "images each tag needs before training"
    )
    key_cache_seconds: float = env_field(
        "LOUPE_KEY_CACHE_SECONDS", 30.0, "how long a resolved API key is cached"
    )
    kafka_send_timeout: float = env_field(
        "LOUPE_KAFKA_SEND_TIMEOUT", 15.0, "seconds to wait for Kafka to acknowledge a job"
    )
