"""`python -m loupe_training`: a trainer (Kafka consumer) with a gRPC health/describe API."""
from __future__ import annotations

import logging
import os
import socket
import threading

from loupe.v1 import metadata_pb2_grpc, storage_pb2_grpc, training_pb2_grpc
from loupe_common import config as cfg
from loupe_common import kafka as lk
from loupe_common.clients import ServiceClient
from loupe_common.grpcserver import create_server, serve_until_signal, setup_logging, start_metrics
from loupe_model.backbone import get_backbone, make_embedder
from loupe_training.config import TrainingConfig
from loupe_training.core import BACKBONE, Trainer
from loupe_training.export import Exporter
from loupe_training.servicer import TrainingServicer
from loupe_training.worker import JobConsumer

log = logging.getLogger("loupe_training")


def device_name() -> str:
    """`cuda:0` when a GPU is usable, else `cpu` (chosen automatically)."""
    try:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def main() -> None:
    config = cfg.load(TrainingConfig, os.environ)
    setup_logging(config.log_level)
    trainer_id = config.trainer_id or f"{socket.gethostname()}-{os.getpid()}"
    metadata = ServiceClient(config.metadata_target, metadata_pb2_grpc.MetadataServiceStub)
    storage = ServiceClient(config.storage_target, storage_pb2_grpc.StorageServiceStub, timeout=120)
    embedder = make_embedder(get_backbone(BACKBONE), config.model_cache or None, threads=config.threads)
    producer = lk.producer(config.kafka_bootstrap)

    def publish(event) -> None:
        producer.send(lk.TRAINING_EVENTS, key=event.project_id.encode(), value=event.SerializeToString())

    trainer = Trainer(metadata, storage, embedder, trainer_id, publish)
    stop = threading.Event()
    consumer = JobConsumer(config.kafka_bootstrap, trainer, stop)
    thread = threading.Thread(target=consumer.run, name="job-consumer", daemon=True)
    thread.start()

    host, _, port = config.addr.rpartition(":")
    server, bound, health = create_server(
        [lambda s: training_pb2_grpc.add_TrainingServiceServicer_to_server(
            TrainingServicer(trainer, device_name(), Exporter(storage, config.model_cache or None),
                             lambda: consumer.assigned_partitions), s)],
        host=host, port=int(port), service_names=["loupe.v1.TrainingService"],
    )
    start_metrics(config.metrics_port, host)
    consumer.ready.wait(60)
    log.info("trainer %s on port %d, device %s", trainer_id, bound, device_name())

    def on_stop() -> None:
        stop.set()
        thread.join(timeout=10)  # a job still running is redelivered (offset not committed)
        producer.close(timeout=5)
        metadata.close()
        storage.close()

    serve_until_signal(server, health, on_stop=on_stop)


if __name__ == "__main__":
    main()
