"""The training server factory, shared by `python -m loupe_training` and the service tests.

A trainer is a Kafka consumer of training jobs with a small gRPC API beside it (describe the
trainer, build iteration exports).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading

from kafka import KafkaProducer

from loupe.v1 import metadata_pb2_grpc, storage_pb2_grpc, training_pb2, training_pb2_grpc
from loupe_common import kafka as lk
from loupe_common.clients import ServiceClient
from loupe_common import internal_tls
from loupe_common.grpcserver import BuiltServer, create_server
from loupe_common.internal_auth import TRAINING, Policy, credential
from loupe_model.backbone import get_backbone, make_embedder
from loupe_training.config import TrainingConfig
from loupe_training.core import BACKBONE, Trainer
from loupe_training.export import Exporter
from loupe_training import access
from loupe_training.servicer import TrainingServicer
from loupe_training.worker import JobConsumer

log = logging.getLogger("loupe_training")

SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
#: How long start-up waits for the job consumer to join its group (then serves anyway).
CONSUMER_READY_SECONDS = 60


def device_name() -> str:
    """`cuda:0` when a GPU is usable, else `cpu` (chosen automatically)."""
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


@dataclasses.dataclass
class TrainingDeps:
    """What a trainer talks to.

    Attributes:
        metadata, storage: clients of the metadata and storage services.
        embedder: the backbone's feature extractor.
        producer: the Kafka producer of training events.
        consume_jobs: whether to consume training jobs from Kafka; a test of the gRPC API
            alone leaves the jobs to the stack's own trainer.
        consumer_options: keyword arguments of `JobConsumer` (topic, group,
            max_poll_interval_ms): a test consumes its own topic, apart from the stack's trainer.
    """

    metadata: ServiceClient
    storage: ServiceClient
    embedder: object
    producer: KafkaProducer
    consume_jobs: bool = True
    consumer_options: dict = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        self.producer.close(timeout=5)
        self.metadata.close()
        self.storage.close()


def connect(config: TrainingConfig) -> TrainingDeps:
    """The collaborators of `config`: service clients, the embedder (exports the backbone to
    ONNX on a cold cache) and a Kafka producer."""
    cred = credential(config.internal_secret, TRAINING)
    tls = internal_tls.load(config)
    metadata = ServiceClient(config.metadata_target, metadata_pb2_grpc.MetadataServiceStub, credential=cred, tls=tls)
    storage = ServiceClient(config.storage_target, storage_pb2_grpc.StorageServiceStub, timeout=120,
                            credential=cred, tls=tls)
    embedder = make_embedder(get_backbone(BACKBONE), config.model_cache or None, threads=config.threads)
    return TrainingDeps(metadata, storage, embedder, lk.producer(config.kafka_bootstrap))


def build_server(config: TrainingConfig, deps: TrainingDeps | None = None) -> BuiltServer:
    """Builds the (not yet started) trainer: its gRPC server and its job consumer.

    Args:
        config: the service configuration; an address with port 0 picks a free port.
        deps: the collaborators (the caller closes them); None creates them from `config`,
            and the returned server's `stop` closes them.
    Returns:
        the bound server, not started; `start` starts the job consumer and waits (up to
        CONSUMER_READY_SECONDS) for it to join its group before the server answers.
    """
    owned = deps is None
    deps = deps or connect(config)
    trainer_id = config.trainer_id or f"{socket.gethostname()}-{os.getpid()}"

    def publish(event) -> None:
        deps.producer.send(lk.TRAINING_EVENTS, key=event.project_id.encode(), value=event.SerializeToString())

    trainer = Trainer(deps.metadata, deps.storage, deps.embedder, trainer_id, publish)
    stop = threading.Event()
    built: BuiltServer | None = None

    def consumer_died(reason: str) -> None:
        # A trainer without its consumer takes no jobs: NOT_SERVING and exit, so the
        # supervisor (supervisord's autorestart, the chart's liveness probe) replaces it.
        if built is not None:
            built.fail(reason)

    consumer = (JobConsumer(config.kafka_bootstrap, trainer, stop, on_death=consumer_died,
                            **deps.consumer_options)
                if deps.consume_jobs else None)
    thread = threading.Thread(target=consumer.run, name="job-consumer", daemon=True) if consumer else None
    device = device_name()
    servicer = TrainingServicer(trainer, device, Exporter(deps.storage, config.model_cache or None),
                                lambda: consumer.assigned_partitions if consumer else 0)
    try:
        server, port, health = create_server(
            [lambda s: training_pb2_grpc.add_TrainingServiceServicer_to_server(servicer, s)],
            host=config.host, port=config.port, service_names=[SERVICE_NAME],
            auth=Policy(config.internal_secret, access.ALLOW),
            tls=internal_tls.load(config), health_port=config.health_port,
        )
    except Exception:
        if owned:
            deps.close()
        raise

    def before_start() -> None:
        if thread is not None:
            thread.start()
            consumer.ready.wait(CONSUMER_READY_SECONDS)
        log.info("trainer %s, device %s", trainer_id, device)

    def after_stop() -> None:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)  # a job still running is redelivered (offset not committed)
        if owned:
            deps.close()

    # A stopping trainer takes no new job while its gRPC calls get their grace: a job fetched
    # then would be cut off by the pod's end (or hold it up) while another trainer is free.
    built = BuiltServer(server, port, health, "training", before_start, before_stop=stop.set,
                        after_stop=after_stop)
    return built
