"""`python -m loupe_common.kafka_topics`: creates Loupe's Kafka topics (the chart's topic Job).

Environment: LOUPE_KAFKA_BOOTSTRAP (required), LOUPE_KAFKA_REPLICATION_FACTOR (default 1).
"""
from __future__ import annotations

import dataclasses
import logging
import os

from loupe_common import config as cfg
from loupe_common.kafka import ensure_topics


@dataclasses.dataclass(frozen=True)
class TopicsConfig:
    bootstrap: str = cfg.env_field("LOUPE_KAFKA_BOOTSTRAP", doc="Kafka bootstrap servers")
    replication_factor: int = cfg.env_field("LOUPE_KAFKA_REPLICATION_FACTOR", 1, "replicas per partition")


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    config = cfg.load(TopicsConfig, os.environ)
    ensure_topics(config.bootstrap, replication_factor=config.replication_factor, timeout=300)


if __name__ == "__main__":
    main()
