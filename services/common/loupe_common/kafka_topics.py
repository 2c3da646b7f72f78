"""`python -m loupe_common.kafka_topics`: creates Loupe's Kafka topics (the chart's topic Job).

Environment: LOUPE_KAFKA_BOOTSTRAP (required), LOUPE_KAFKA_REPLICATION_FACTOR (default 1), and
the clients' security settings (`loupe_common.kafka.KafkaSecurity`: LOUPE_KAFKA_SECURITY_PROTOCOL,
LOUPE_KAFKA_SASL_MECHANISM, LOUPE_KAFKA_USERNAME, LOUPE_KAFKA_PASSWORD, LOUPE_KAFKA_SSL_CA_FILE).
"""
from __future__ import annotations

import dataclasses
import logging
import os

from loupe_common import config as cfg
from loupe_common.kafka import ensure_topics, security_from_env


@dataclasses.dataclass(frozen=True)
class TopicsConfig:
    bootstrap: str = cfg.env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    replication_factor: int = cfg.env_field("LOUPE_KAFKA_REPLICATION_FACTOR", 1, "replicas per partition")


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    config = cfg.load(TopicsConfig, os.environ)
    ensure_topics(config.bootstrap, replication_factor=config.replication_factor, timeout=300,
                  security=security_from_env(os.environ))


if __name__ == "__main__":
    main()
