"""The prediction server factory, shared by `python -m loupe_prediction` and the service tests."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

from grpc_health.v1.health_pb2 import HealthCheckResponse
from kafka import KafkaProducer
from kafka.errors import KafkaError

from loupe.v1 import metadata_pb2_grpc, prediction_pb2, prediction_pb2_grpc, storage_pb2_grpc
from loupe_common import kafka as lk
from loupe_common.clients import ServiceClient
from loupe_common.errors import Unavailable
from loupe_common import internal_tls
from loupe_common.grpcserver import BuiltServer, create_server
from loupe_common.internal_auth import PREDICTION, Policy, credential
from loupe_model.archive import model_name
from loupe_model.backbone import get_backbone
from loupe_prediction import access
from loupe_prediction.config import PredictionConfig
from loupe_prediction.core import HeadCache, Predictor
from loupe_prediction.recorder import HEALTH_SERVICE, PredictionRecorder
from loupe_prediction.retention import PredictionRetention
from loupe_prediction.servicer import PredictionServicer
from loupe_prediction.torchserve import TorchServeClient

log = logging.getLogger("loupe_prediction")
SERVICE_NAME = prediction_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name
SERVING, NOT_SERVING = HealthCheckResponse.SERVING, HealthCheckResponse.NOT_SERVING


@dataclasses.dataclass
class PredictionDeps:
    """What the prediction service talks to.

    Attributes:
        metadata, storage: clients of the metadata and storage services.
        torchserve: TorchServe with the shared backbone registered.
        producer: the Kafka producer of stored predictions.
    """

    metadata: ServiceClient
    storage: ServiceClient
    torchserve: TorchServeClient
    producer: KafkaProducer

    def close(self) -> None:
        self.producer.flush(timeout=10)
        self.producer.close(timeout=5)
        self.metadata.close()
        self.storage.close()


def _record_producer(config: PredictionConfig) -> KafkaProducer:
    """The producer of stored predictions: no lingering (a request waits for its record's
    acknowledgement), and a record not delivered within LOUPE_RECORD_TIMEOUT_S is given up
    (its classification failed with 503), never delivered later."""
    timeout_ms = int(config.record_timeout_s * 1000)
    return lk.producer(config.kafka_bootstrap, linger_ms=0, max_block_ms=timeout_ms,
                       delivery_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms)


def connect(config: PredictionConfig) -> PredictionDeps:
    """The collaborators of `config`; registers the backbone in TorchServe (waits for it)."""
    torchserve = TorchServeClient(config.inference_url, config.management_url,
                                  model_name(get_backbone(config.backbone)))
    torchserve.ensure_registered(config.batch_size, config.max_batch_delay_ms)
    cred = credential(config.internal_secret, PREDICTION)
    tls = internal_tls.load(config)
    return PredictionDeps(
        ServiceClient(config.metadata_target, metadata_pb2_grpc.MetadataServiceStub, credential=cred, tls=tls),
        ServiceClient(config.storage_target, storage_pb2_grpc.StorageServiceStub, credential=cred, tls=tls),
        torchserve, _record_producer(config),
    )


class RecordSink:
    """What a stored classification is handed to before it is answered.

    A call returns once Kafka has acknowledged the record, so a service killed right after the
    answer loses nothing the caller was told is stored; it raises Unavailable (the
    classification fails with 503, and internal clients do not retry it) when Kafka has not
    taken it within `timeout_s`. Costs the broker's acknowledgement: about a millisecond on
    loopback, with a producer that does not linger.

    After a failure Kafka is taken to be down: one call at a time tries again (and waits up to
    `timeout_s`), the others fail at once instead of each holding a thread of the gateway for
    `timeout_s`; the first acknowledgement ends it.
    """

    def __init__(self, producer, timeout_s: float):
        self.producer = producer
        self.timeout_s = timeout_s
        self.failing = False
        self._probe = threading.Lock()

    def __call__(self, rec) -> None:
        probing = self.failing
        if probing and not self._probe.acquire(blocking=False):
            raise Unavailable("stored predictions cannot be queued now (Kafka does not answer); "
                              "nothing was stored", "ServiceUnavailable", retryable=False)
        try:
            self._send(rec)
            self.failing = False
        except Unavailable:
            self.failing = True
            raise
        finally:
            if probing:
                self._probe.release()

    def _send(self, rec) -> None:
        deadline = time.monotonic() + self.timeout_s
        try:  # send() itself may wait (for metadata): the whole wait is bounded by timeout_s
            future = self.producer.send(lk.PREDICTIONS, key=rec.project_id.encode(),
                                        value=rec.SerializeToString())
            future.get(timeout=max(0.0, deadline - time.monotonic()))
        except KafkaError as err:
            log.error("prediction %s not queued for storage: %s", rec.prediction_id, err)
            raise Unavailable("the prediction could not be queued for storage; nothing was stored",
                              "ServiceUnavailable", retryable=False) from err


def build_server(config: PredictionConfig, deps: PredictionDeps | None = None) -> BuiltServer:
    """Builds the (not yet started) prediction server and, when LOUPE_RECORD_PREDICTIONS is on,
    the recorder that stores predictions from Kafka.

    Args:
        config: the service configuration; an address with port 0 picks a free port.
        deps: the collaborators (the caller closes them); None creates them from `config`,
            and the returned server's `stop` closes them.
    Returns:
        the bound server, not started; `start` starts the recorder, whose consumer group
        membership is reported on health as HEALTH_SERVICE.
    """
    owned = deps is None
    deps = deps or connect(config)

    predictor = Predictor(HeadCache(deps.storage, config.head_cache_size), deps.torchserve,
                          RecordSink(deps.producer, config.record_timeout_s))
    try:
        server, port, health = create_server(
            [lambda s: prediction_pb2_grpc.add_PredictionServiceServicer_to_server(
                PredictionServicer(predictor, config.backbone), s)],
            host=config.host, port=config.port, service_names=[SERVICE_NAME],
            auth=Policy(config.internal_secret, access.ALLOW),
            tls=internal_tls.load(config), health_port=config.health_port,
        )
    except Exception:
        if owned:
            deps.close()
        raise
    stop = threading.Event()
    recorder_thread = None
    if config.record_predictions:
        def on_assignment(held: bool) -> None:
            health.set(HEALTH_SERVICE, SERVING if held else NOT_SERVING)
            log.info("recorder %s partitions of %s", "holds" if held else "has lost its", lk.PREDICTIONS)

        health.set(HEALTH_SERVICE, NOT_SERVING)
        recorder = PredictionRecorder(config.kafka_bootstrap, deps.metadata, deps.storage, stop, on_assignment)
        recorder_thread = threading.Thread(target=recorder.run, name="recorder", daemon=True)

    retention = PredictionRetention(deps.metadata, deps.storage, config.prediction_retention_days, stop,
                                    config.retention_interval_s)
    retention_thread = threading.Thread(target=retention.run, name="retention", daemon=True)

    def before_start() -> None:
        if recorder_thread is not None:
            recorder_thread.start()
        if config.prediction_retention_days > 0:
            retention_thread.start()
        log.info("prediction through TorchServe at %s", config.inference_url)

    def after_stop() -> None:
        stop.set()
        if recorder_thread is not None:
            recorder_thread.join(timeout=10)
        if retention_thread.is_alive():
            retention_thread.join(timeout=10)
        if owned:
            deps.close()

    return BuiltServer(server, port, health, "prediction", before_start, after_stop)
