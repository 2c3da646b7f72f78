"""The gateway's configuration: every environment variable it reads, in one place."""
from __future__ import annotations

from dataclasses import dataclass

from loupe_common import limits
from loupe_common.config import env_field
from loupe_common.ports import SERVICES
from loupe_common.internal_tls import InternalTLSConfig


@dataclass(frozen=True)
class GatewayConfig(InternalTLSConfig):
    host: str = env_field("LOUPE_GATEWAY_HOST", "127.0.0.1", "address the HTTP server binds")
    port: int = env_field("LOUPE_GATEWAY_PORT", SERVICES["gateway"].main, "HTTP port (REST API, /healthz, /metrics)")
    grpc_port: int = env_field(
        "LOUPE_GATEWAY_GRPC_PORT", SERVICES["gateway"].grpc,
        "port of the public gRPC API (docs/grpc.md), on LOUPE_GATEWAY_HOST; 0 turns it off",
    )
    metadata_target: str = env_field("LOUPE_METADATA_TARGET", doc="host:port of the metadata service")
    storage_target: str = env_field("LOUPE_STORAGE_TARGET", doc="host:port of the storage service")
    prediction_target: str = env_field(
        "LOUPE_PREDICTION_TARGET", doc="host:port of the prediction service"
    )
    training_target: str = env_field(
        "LOUPE_TRAINING_TARGET", doc="host:port of a training service (builds iteration exports)"
    )
    kafka_bootstrap: str = env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    url_signing_secret: str = env_field(
        "LOUPE_URL_SIGNING_SECRET",
        doc="HMAC secret that signs the image URIs returned in responses (required)",
    )
    internal_secret: str = env_field(
        "LOUPE_INTERNAL_SECRET",
        doc="per-install secret the internal credentials of Loupe's services derive from (required)")
    url_ttl_seconds: int = env_field(
        "LOUPE_URL_TTL_SECONDS", 3600, "how long a signed image URI stays valid"
    )
    log_level: str = env_field("LOUPE_LOG_LEVEL", "INFO", "logging level")
    threads: int = env_field("LOUPE_GATEWAY_THREADS", 16, "waitress worker threads")
    # Limits, with Custom Vision's documented defaults (loupe_common.limits for those that
    # other parts of Loupe need too).
    max_training_image_bytes: int = env_field(
        "LOUPE_MAX_TRAINING_IMAGE_BYTES", limits.MAX_TRAINING_IMAGE_BYTES, "largest training image (6 MB)"
    )
    max_prediction_image_bytes: int = env_field(
        "LOUPE_MAX_PREDICTION_IMAGE_BYTES", limits.MAX_PREDICTION_IMAGE_BYTES,
        "largest prediction image (4 MB)",
    )
    max_batch_images: int = env_field(
        "LOUPE_MAX_BATCH_IMAGES", limits.MAX_BATCH_IMAGES, "most images per upload"
    )
    max_batch_tags: int = env_field("LOUPE_MAX_BATCH_TAGS", limits.MAX_BATCH_TAGS, "most tags per upload")
    max_image_side: int = env_field("LOUPE_MAX_IMAGE_SIDE", 10240, "longest image side in px")
    max_aspect_ratio: float = env_field("LOUPE_MAX_ASPECT_RATIO", 25.0, "long side / short side at most")
    min_images_per_tag: int = env_field(
        "LOUPE_MIN_IMAGES_PER_TAG", 5, "images each tag needs before training"
    )
    key_cache_seconds: float = env_field(
        "LOUPE_KEY_CACHE_SECONDS", 30.0, "how long a resolved API key is cached"
    )
    published_cache_seconds: float = env_field(
        "LOUPE_PUBLISHED_CACHE_SECONDS", 10.0,
        "how long a published iteration's lookup is reused (changes are announced to every "
        "gateway at once; this bounds one whose announcement was lost; 0: no cache)"
    )
    stored_quota_cache_seconds: float = env_field(
        "LOUPE_STORED_QUOTA_CACHE_SECONDS", 10.0,
        "how long an account's stored-prediction quota, as metadata counted it, is reused (this "
        "gateway adds its own stores meanwhile; several gateways overshoot by what the others "
        "store in this time; 0: ask on every stored classification)"
    )
    kafka_send_timeout: float = env_field(
        "LOUPE_KAFKA_SEND_TIMEOUT", 15.0, "seconds to wait for Kafka to acknowledge a job"
    )
    # The reconciler (reconciler.py): what a gateway that died mid-way, or a lost job, left.
    reconcile_interval_s: float = env_field(
        "LOUPE_RECONCILE_INTERVAL_S", 10.0,
        "seconds between the reconciler's passes over the training hand-off; 0 turns it off",
    )
    job_resend_after_s: float = env_field(
        "LOUPE_TRAINING_JOB_RESEND_AFTER_S", 30.0,
        "seconds a training job may stay unsent (not acknowledged by Kafka) before the "
        "reconciler produces it again; keep it above LOUPE_KAFKA_SEND_TIMEOUT",
    )
    orphan_sweep_interval_s: float = env_field(
        "LOUPE_ORPHAN_SWEEP_INTERVAL_S", 3600.0,
        "seconds between the reconciler's sweeps for objects no row references (a deleted "
        "project's late writes, an upload whose rows never came); 0 turns it off",
    )
    orphan_grace_s: float = env_field(
        "LOUPE_ORPHAN_GRACE_S", 3600.0,
        "how old unreferenced image bytes must be before the sweep removes them (an upload "
        "writes its bytes before its rows)",
    )
    training_start_timeout_s: float = env_field(
        "LOUPE_TRAINING_START_TIMEOUT_S", 86400.0,
        "seconds an iteration may wait in Training with no trainer starting its job before the "
        "reconciler fails it (a lost job, no trainer running); 0: it waits forever",
    )
    export_timeout_s: float = env_field(
        "LOUPE_EXPORT_TIMEOUT_S", 900.0,
        "seconds after which an export still Exporting counts as Failed and a new export may "
        "start (its gateway died mid-way); keep it above the 300 s an export call may take",
    )
    # Server-side fetching of image URLs (images/urls, classify .../url, quicktest/url).
    url_fetch_allow: str = env_field(
        "LOUPE_URL_FETCH_ALLOW", "",
        "comma-separated CIDRs, IPs or host names that image URLs may resolve to although "
        "private (loopback, private, link-local, ...), on any port; empty: public addresses only",
    )
    url_fetch_connect_timeout: float = env_field(
        "LOUPE_URL_FETCH_CONNECT_TIMEOUT", 3.0, "seconds to connect to an image URL's host"
    )
    url_fetch_timeout: float = env_field(
        "LOUPE_URL_FETCH_TIMEOUT", 10.0, "seconds to fetch one image URL, redirects included"
    )
    url_fetch_max_redirects: int = env_field(
        "LOUPE_URL_FETCH_MAX_REDIRECTS", 3, "redirects followed when fetching an image URL"
    )
    url_fetch_concurrency: int = env_field(
        "LOUPE_URL_FETCH_CONCURRENCY", 8, "image URLs of one batch fetched in parallel"
    )
    # Rate limiting per API key (token bucket per gateway process).
    rate_limit_per_second: float = env_field(
        "LOUPE_RATE_LIMIT_PER_SECOND", 10.0,
        "requests per second per API key (Custom Vision S0: 10); 0 disables rate limiting",
    )
    rate_limit_burst: float = env_field(
        "LOUPE_RATE_LIMIT_BURST", 20.0, "requests a key may make at once after a quiet period"
    )
    suggestion_max_images: int = env_field(
        "LOUPE_SUGGESTION_MAX_IMAGES", limits.MAX_SUGGESTED_IMAGES,
        "untagged images (the oldest) a Smart Labeler query or count considers; 0: all",
    )
    # Unknown keys per client address: on whether or not keys are rate-limited, so guessing
    # keys costs a bounded number of database queries.
    unknown_keys_per_second: float = env_field(
        "LOUPE_UNKNOWN_KEYS_PER_SECOND", 5.0,
        "unknown API keys a client address may try per second (then 429, no look-up); 0: no limit",
    )
    unknown_keys_burst: float = env_field(
        "LOUPE_UNKNOWN_KEYS_BURST", 30.0, "unknown keys a client address may try at once"
    )
