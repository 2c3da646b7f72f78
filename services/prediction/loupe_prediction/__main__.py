"""`python -m loupe_prediction`: serves classification until SIGTERM."""
from __future__ import annotations

import logging
import os
import threading

from grpc_health.v1.health_pb2 import HealthCheckResponse

from loupe.v1 import metadata_pb2_grpc, prediction_pb2_grpc, storage_pb2_grpc
from loupe_common import config as cfg
from loupe_common import kafka as lk
from loupe_common.clients import ServiceClient
from loupe_common.grpcserver import create_server, serve_until_signal, setup_logging, start_metrics
from loupe_model.archive import model_name
from loupe_model.backbone import get_backbone
from loupe_prediction.config import PredictionConfig
from loupe_prediction.core import HeadCache, Predictor
from loupe_prediction.recorder import HEALTH_SERVICE, PredictionRecorder
from loupe_prediction.servicer import PredictionServicer
from loupe_prediction.torchserve import TorchServeClient

log = logging.getLogger("loupe_prediction")
SERVING, NOT_SERVING = HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING


def main() -> None:
    config = cfg.load(PredictionConfig, os.environ)
    setup_logging(config.log_level)
    metadata = ServiceClient(config.metadata_target, metadata_pb2_grpc.MetadataServiceStub)
    storage = ServiceClient(config.storage_target, storage_pb2_grpc.StorageServiceStub)
    torchserve = TorchServeClient(config.inference_url, config.management_url,
                                  model_name(get_backbone(config.backbone)))
    torchserve.ensure_registered(config.batch_size, config.max_batch_delay_ms)
    producer = lk.producer(config.kafka_bootstrap)

    def record(rec) -> None:
        # Not awaited: storing a prediction never slows the answer. The broker acknowledges
        # asynchronously; a failure is logged.
        producer.send(lk.PREDICTIONS, key=rec.project_id.encode(), value=rec.SerializeToString()).add_errback(
            lambda exc: log.error("prediction %s not queued for storage: %s", rec.prediction_id, exc))

    predictor = Predictor(HeadCache(storage, config.head_cache_size), torchserve, record)
    host, _, port = config.addr.rpartition(":")
    server, bound, health = create_server(
        [lambda s: prediction_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(predictor, config.backbone), s)],
        host=host, port=int(port), service_names=["loupe.v1.PredictionService"],
    )
    stop = threading.Event()
    recorder_thread = None
    if config.record_predictions:
        def on_assignment(held: bool) -> None:
            health.set(HEALTH_SERVICE, SERVING if held else NOT_SERVING)
            log.info("recorder %s partitions of %s", "holds" if held else "has lost its", lk.PREDICTIONS)

        health.set(HEALTH_SERVICE, NOT_SERVING)
        recorder = PredictionRecorder(config.kafka_bootstrap, metadata, storage, stop, on_assignment)
        recorder_thread = threading.Thread(target=recorder.run, name="recorder", daemon=True)
        recorder_thread.start()
    start_metrics(config.metrics_port, host)
    log.info("prediction service on port %d (TorchServe %s)", bound, config.inference_url)

    def on_stop() -> None:
        stop.set()
        producer.flush(timeout=10)
        producer.close(timeout=5)
        if recorder_thread is not None:
            recorder_thread.join(timeout=10)
        metadata.close()
        storage.close()

    serve_until_signal(server, health, on_stop=on_stop)


if __name__ == "__main__":
    main()
