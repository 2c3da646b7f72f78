"""Stores predicted images and results from `loupe.predictions`, off the request path."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from google.protobuf.message import DecodeError
from prometheus_client import Counter

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as pb
from loupe.v1 import storage_pb2 as spb
from loupe_common import kafka as lk
from loupe_common.errors import LoupeError, Unavailable
from loupe_model.preprocess import InvalidImage, image_info

log = logging.getLogger(__name__)

RECORDED = Counter("loupe_predictions_recorded_total", "Stored predictions", ["outcome"])
#: The gRPC health name the prediction service reports SERVING while its recorder holds
#: partitions of `loupe.predictions`: until then a classification is stored only once the group
#: has formed (after a crash, once the dead member's session has expired: half a minute), so the
#: local stack is ready only when this is SERVING.
HEALTH_SERVICE = lk.PREDICTION_RECORDER_GROUP
#: Tries of a record that fails in an unexpected way before it is dropped: a record that
#: always fails must not stop the recorder (nor hold its partition) for good.
UNEXPECTED_TRIES = 3
#: Seconds between a failed consumer and the next one.
RETRY_SECONDS = 2.0
RESTARTS = Counter("loupe_prediction_recorder_consumer_restarts_total",
                   "Recorder consumers that failed and were replaced")


class PredictionRecorder:
    """Consumer group `loupe-prediction-recorders`; commits after both stores succeeded.

    Args:
        bootstrap: Kafka bootstrap servers.
        metadata, storage: clients of the metadata and storage services.
        stop: set to stop consuming.
        on_assignment: called with True once the group has given this consumer partitions,
            with False when a rebalance has taken them all away or the consumer failed.
        consumer_factory: makes a subscribed consumer (default: `loupe.predictions`, group
            PREDICTION_RECORDER_GROUP on `bootstrap`).
    """

    def __init__(self, bootstrap: str, metadata, storage, stop: threading.Event,
                 on_assignment: Callable[[bool], None] = lambda held: None,
                 consumer_factory: Callable[[], object] | None = None):
        self.bootstrap = bootstrap
        self.consumer_factory = consumer_factory or (
            lambda: lk.consumer(bootstrap, lk.PREDICTIONS, lk.PREDICTION_RECORDER_GROUP))
        self.metadata = metadata
        self.storage = storage
        self.stop = stop
        self.on_assignment = on_assignment

    def store(self, record: pb.PredictionRecord) -> None:
        try:
            _fmt, width, height = image_info(record.image)
        except InvalidImage:
            width = height = 0
        put = self.storage.PutImage(spb.PutImageRequest(project_id=record.project_id, data=record.image))
        self.metadata.RecordPrediction(mpb.RecordPredictionRequest(prediction=mpb.StoredPrediction(
            id=record.prediction_id, project_id=record.project_id, iteration_id=record.iteration_id,
            image_sha256=put.sha256, width=width, height=height, application=record.application,
            created=record.created,
            predictions=[mpb.PredictedTag(tag_id=p.tag_id, tag_name=p.tag_name, probability=p.probability)
                         for p in record.predictions],
        )))

    def _handle(self, msg) -> bool:
        """Stores one record, retrying while the stores are unavailable; False when stopped."""
        try:
            record = pb.PredictionRecord.FromString(msg.value)
        except DecodeError as err:
            log.error("record %s at offset %s is not a PredictionRecord, dropped: %s", msg.key, msg.offset, err)
            RECORDED.labels("unreadable").inc()
            return True
        unexpected = 0
        while not self.stop.is_set():
            try:
                self.store(record)
                RECORDED.labels("stored").inc()
                return True
            except Unavailable as err:
                log.warning("store failed, retrying: %s", err)
                self.stop.wait(2)
            except (LoupeError, ValueError) as err:
                # e.g. the project was deleted meanwhile: nothing to store.
                log.info("prediction %s not stored: %s", msg.key, err)
                RECORDED.labels("dropped").inc()
                return True
            except Exception:  # noqa: BLE001 - one bad record must not end the recorder
                unexpected += 1
                log.exception("prediction %s failed unexpectedly (%d of %d)", msg.key, unexpected, UNEXPECTED_TRIES)
                if unexpected >= UNEXPECTED_TRIES:
                    RECORDED.labels("failed").inc()
                    return True
                self.stop.wait(2)
        return False

    def run(self) -> None:
        """Consumes until stopped. A consumer that fails (the broker gone, a commit refused) is
        closed and a new one joins the group after RETRY_SECONDS: the recorder never ends
        while the service runs, so no stored prediction waits for a restart of the service."""
        while not self.stop.is_set():
            try:
                self._consume(self.consumer_factory())
            except Exception:  # noqa: BLE001 - whatever ends one consumer, the next one goes on
                log.exception("the recorder's consumer failed; a new one joins in %.0f s", RETRY_SECONDS)
                RESTARTS.inc()
                self.stop.wait(RETRY_SECONDS)

    def _consume(self, consumer) -> None:
        held = False
        try:
            while not self.stop.is_set():
                batches = consumer.poll(timeout_ms=500, max_records=1)
                if bool(consumer.assignment()) != held:  # poll joins the group and rebalances
                    held = not held
                    self.on_assignment(held)
                for records in batches.values():
                    for msg in records:
                        if not self._handle(msg):
                            return
                        consumer.commit()
        finally:
            if held:
                self.on_assignment(False)
            try:
                consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001 - closing a broken client may fail too
                log.warning("closing the recorder's consumer failed", exc_info=True)
