"""Kafka topics and client factories (kafka-python) shared by the services."""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from loupe_common import config as cfg

log = logging.getLogger(__name__)

TRAINING_JOBS = "loupe.training.jobs"
TRAINING_EVENTS = "loupe.training.events"
PREDICTIONS = "loupe.predictions"
#: Project ids whose publications, iterations or tags changed: every gateway reads it to keep
#: its cache of published iterations true (loupe_gateway.publications).
PUBLICATIONS = "loupe.publications"
TRAINER_GROUP = "loupe-trainers"
#: kafka-python doubles its reconnect wait up to 30 s by default: after a broker restart of a
#: few seconds a client would go on failing for as long again. Try at least every second.
RECONNECT_BACKOFF_MAX_MS = 1000
PREDICTION_RECORDER_GROUP = "loupe-prediction-recorders"

#: topic -> partitions. Training jobs are keyed by project id: partitions bound how many
#: trainers work at once. Publications has one partition: every gateway reads all of it.
TOPICS = {TRAINING_JOBS: 8, TRAINING_EVENTS: 4, PREDICTIONS: 4, PUBLICATIONS: 1}
#: The largest record Loupe writes (a stored prediction carries its image, up to 4 MB, and
#: exports their artifacts): producers are allowed this much and every topic is created (or
#: altered) to accept it, so a broker whose default is 1 MB (Strimzi, managed Kafka) does not
#: refuse them.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
TOPIC_CONFIGS = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
#: How long a new consumer waits for its topic's partitions before joining its group.
METADATA_WAIT_SECONDS = 30.0

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclasses.dataclass(frozen=True)
class KafkaSecurity:
    """How every Loupe Kafka client connects (`security_from_env` reads it).

    Each service's config keeps only LOUPE_KAFKA_BOOTSTRAP; these are read where a client is
    made (`producer`, `consumer`, `admin`, all at start-up), so that every client of every
    service and Job gets the same settings from one place.
    """
    protocol: str = cfg.env_field(
        "LOUPE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SASL_PLAINTEXT, SASL_SSL or SSL")
    mechanism: str = cfg.env_field(
        "LOUPE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", "SASL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN")
    username: str = cfg.env_field("LOUPE_KAFKA_USERNAME", "", "SASL user name")
    password: str = dataclasses.field(
        repr=False, metadata={"env": "LOUPE_KAFKA_PASSWORD", "default": "", "doc": "SASL password"})
    ca_file: str = cfg.env_field(
        "LOUPE_KAFKA_SSL_CA_FILE", "", "SSL: PEM file of the CAs to trust (empty: the system's)")

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise cfg.ConfigError(
                f"LOUPE_KAFKA_SECURITY_PROTOCOL={self.protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.mechanism not in SASL_MECHANISMS:
                raise cfg.ConfigError(
                    f"LOUPE_KAFKA_SASL_MECHANISM={self.mechanism!r}: expected one of {', '.join(SASL_MECHANISMS)}")
            missing = [name for name, value in (("LOUPE_KAFKA_USERNAME", self.username),
                                                ("LOUPE_KAFKA_PASSWORD", self.password)) if not value]
            if missing:
                raise cfg.ConfigError(f"LOUPE_KAFKA_SECURITY_PROTOCOL={self.protocol} needs {' and '.join(missing)}")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def client_options(self) -> dict[str, object]:
        """The kafka-python options of this setting, for any producer, consumer or admin client."""
        options: dict[str, object] = {"security_protocol": self.protocol}
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        if self.protocol in ("SSL", "SASL_SSL") and self.ca_file:
            options["ssl_cafile"] = self.ca_file
        return options


def security_from_env(environ: Mapping[str, str] | None = None) -> KafkaSecurity:
    """The clients' security settings from `environ` (default: the process environment).

    Raises:
        ConfigError: an unknown protocol or mechanism, or SASL without a user name or password.
    """
    return cfg.load(KafkaSecurity, os.environ if environ is None else environ)


def ensure_topics(
    bootstrap: str,
    topics: dict[str, int] | None = None,
    timeout: float = 60.0,
    replication_factor: int = 1,
    security: KafkaSecurity | None = None,
) -> None:
    """Creates the project's topics if they do not exist (idempotent).

    Args:
        bootstrap: Kafka bootstrap servers.
        topics: topic -> partitions (default: every Loupe topic).
        timeout: how long to wait for the broker.
        replication_factor: 1 for the local single broker; 3 on a production cluster.
        security: how to connect (default: `security_from_env()`).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = admin(bootstrap, security)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        existing = set(client.list_topics())
        names = list(topics or TOPICS)
        wanted = {
            name: {"num_partitions": parts, "replication_factor": replication_factor}
            for name, parts in (topics or TOPICS).items()
            if name not in existing
        }
        if wanted:
            try:
                client.create_topics(
                    [NewTopic(name, topic_configs=dict(TOPIC_CONFIGS), **spec) for name, spec in wanted.items()],
                    wait_for_metadata=True,
                )
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", sorted(wanted))
        _align_topic_configs(client, [n for n in names if n not in wanted])
    finally:
        client.close()


def _align_topic_configs(client: KafkaAdminClient, names: list[str]) -> None:
    """Sets TOPIC_CONFIGS on topics that exist without them (made by an older Loupe or by hand)."""
    if not names:
        return
    described = client.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, configs=dict.fromkeys(TOPIC_CONFIGS)) for n in names],
        config_filter="all",
    )
    stale = [
        name for by_name in described.values() for name, current in by_name.items()
        if any(config_value(current.get(k)) != v for k, v in TOPIC_CONFIGS.items())
    ]
    if stale:
        # Incremental where the broker supports it: the topics' other settings stay as they are.
        client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, n, configs=dict(TOPIC_CONFIGS)) for n in stale])
        log.info("set %s on topics %s", TOPIC_CONFIGS, sorted(stale))


def config_value(entry) -> str | None:
    """The value in one entry of `KafkaAdminClient.describe_configs`' answer."""
    return entry.get("value") if isinstance(entry, dict) else entry


def admin(bootstrap: str, security: KafkaSecurity | None = None, **overrides) -> KafkaAdminClient:
    """An admin client (raises KafkaError while the broker cannot be reached or refuses it).

    Args:
        bootstrap: Kafka bootstrap servers.
        security: how to connect (default: `security_from_env()`).
        overrides: other KafkaAdminClient options.
    """
    options = dict((security or security_from_env()).client_options(), bootstrap_servers=bootstrap,
                   client_id="loupe-admin")
    options.update(overrides)
    return KafkaAdminClient(**options)


def producer(bootstrap: str, security: KafkaSecurity | None = None, **overrides) -> KafkaProducer:
    """A producer that waits for the broker's acknowledgement (nothing is fire-and-forget).

    Args:
        bootstrap: Kafka bootstrap servers.
        security: how to connect (default: `security_from_env()`).
        overrides: other KafkaProducer options.
    """
    options = dict(
        **(security or security_from_env()).client_options(),
        bootstrap_servers=bootstrap,
        acks="all",
        retries=5,
        linger_ms=5,
        max_request_size=MAX_MESSAGE_BYTES,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        # kafka-python 3.0's idempotent producer (its default) delivers nothing more after the
        # broker restarts: every send times out until the process restarts (measured: a SIGKILLed
        # local broker, back in seconds; 40 s of timeouts after). Every consumer of Loupe's topics
        # takes a record twice without harm (stored predictions by id, jobs by iteration).
        enable_idempotence=False,
    )
    options.update(overrides)
    return KafkaProducer(**options)


def consumer(bootstrap: str, topic: str, group: str, security: KafkaSecurity | None = None,
             **overrides) -> KafkaConsumer:
    """A consumer with manual commits: offsets are committed only after the work is done.

    Args:
        bootstrap: Kafka bootstrap servers.
        topic: the one topic it subscribes to, once its partitions are known.
        group: consumer group.
        security: how to connect (default: `security_from_env()`).
        overrides: other KafkaConsumer options.
    """
    options = dict(
        **(security or security_from_env()).client_options(),
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=32 * 1024 * 1024,
    )
    options.update(overrides)
    c = KafkaConsumer(**options)
    # Join the group only once this client's metadata holds the topic's partitions: a group
    # leader that assigns before it has them logs "No partition metadata", hands every member
    # nothing, and (seen in the trainer-crash test) can stay that way, since its assignment then
    # matches its own metadata snapshot and nothing asks for a rebalance.
    deadline = time.monotonic() + METADATA_WAIT_SECONDS
    while not c.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            log.warning("no partition metadata for %s after %.0f s; subscribing anyway", topic, METADATA_WAIT_SECONDS)
            break
        time.sleep(0.2)
    c.subscribe([topic])
    return c
