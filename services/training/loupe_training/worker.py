"""The Kafka side of a trainer: consume a job, train, and only then commit its offset."""
from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Counter, Histogram

from loupe.v1 import training_pb2 as tpb
from loupe_common import kafka as lk
from loupe_common.errors import Unavailable
from loupe_training.core import Trainer

log = logging.getLogger(__name__)

JOBS = Counter("loupe_training_jobs_total", "Training jobs handled", ["outcome"])
JOB_SECONDS = Histogram("loupe_training_job_seconds", "Time to handle a training job",
                        buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400))


class JobConsumer:
    """Consumes `loupe.training.jobs` in group `loupe-trainers`, one job at a time.

    The offset is committed only after the job's iteration is recorded Completed or Failed (or
    found already finished), so a trainer killed mid-job loses nothing: after the group
    rebalances, another trainer gets the same job.
    """

    def __init__(self, bootstrap: str, trainer: Trainer, stop: threading.Event):
        self.bootstrap = bootstrap
        self.trainer = trainer
        self.stop = stop
        self.ready = threading.Event()
        #: How many job partitions the group has given this trainer (read by DescribeTrainer).
        self.assigned_partitions = 0

    def run(self) -> None:
        consumer = lk.consumer(
            self.bootstrap, lk.TRAINING_JOBS, lk.TRAINER_GROUP,
            # A dead trainer is noticed after the session timeout.
            session_timeout_ms=10000, heartbeat_interval_ms=2000,
            # The group waits up to this long for a busy member when it rebalances, so it is
            # kept short of "hours": quick jobs take seconds; a job over it is redelivered
            # (harmless: finishing is idempotent by iteration id).
            max_poll_interval_ms=15 * 60 * 1000,
        )
        self.ready.set()
        try:
            while not self.stop.is_set():
                batches = consumer.poll(timeout_ms=500, max_records=1)
                self.assigned_partitions = len(consumer.assignment())
                for records in batches.values():
                    for record in records:
                        if not self._handle(record.value):
                            return  # stopping: leave the offset uncommitted (redelivery)
                        consumer.commit()
        finally:
            consumer.close(autocommit=False)

    def _handle(self, payload: bytes) -> bool:
        try:
            job = tpb.TrainingJob.FromString(payload)
        except Exception:  # noqa: BLE001 - a poison message must not block the partition
            log.exception("undecodable training job dropped")
            JOBS.labels("undecodable").inc()
            return True
        started = time.monotonic()
        while not self.stop.is_set():
            try:
                outcome = self.trainer.run_job(job)
            except Unavailable as err:
                log.warning("backend unavailable (%s); retrying job %s", err, job.iteration_id)
                self.stop.wait(2.0)
                continue
            JOBS.labels(outcome.status.lower()).inc()
            JOB_SECONDS.observe(time.monotonic() - started)
            return True
        return False
