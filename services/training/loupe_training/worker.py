"""The Kafka side of a trainer: consume a job, train, and only then commit its offset."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import Counter, Histogram

from loupe.v1 import training_pb2 as tpb
from loupe_common import kafka as lk
from loupe_common.errors import Unavailable
from loupe_training.core import Trainer

log = logging.getLogger(__name__)

JOBS = Counter("loupe_training_jobs_total", "Training jobs handled", ["outcome"])
JOB_SECONDS = Histogram("loupe_training_job_seconds", "Time to handle a training job",
                        buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400))

#: The longest the poll loop may go without polling before the group takes this trainer's
#: partitions away. Jobs run off the poll loop, which polls every POLL_SECONDS all the while,
#: so this does not bound a job's length; it bounds how long a rebalance waits for a member
#: whose poll loop is stuck.
MAX_POLL_INTERVAL_MS = 60 * 1000
POLL_SECONDS = 0.5
#: Retry pause after a backend was unavailable or a job raised past the trainer.
RETRY_SECONDS = 2.0
#: Tries of a job whose errors escape the trainer itself (it could not even record a failure)
#: before its offset is committed anyway: a job must not block its partition for ever.
JOB_TRIES = 3
#: On a graceful stop, how long a running job may still take to finish (and be committed).
STOP_WAIT_SECONDS = 8.0


class JobConsumer:
    """Consumes `loupe.training.jobs` in group `loupe-trainers`, one job at a time.

    The offset is committed only after the job's iteration is recorded Completed or Failed (or
    found already finished), so a trainer killed mid-job loses nothing: after the group
    rebalances, another trainer gets the same job.

    The job runs on a thread of its own while this trainer's partitions are paused and the
    poll loop keeps polling: the consumer stays in its group however long the job takes
    (max.poll.interval.ms bounds the poll loop, not the job), and nothing more is fetched
    until the job is done.

    When the poll loop itself fails (the Kafka client raised), `failure` says why and
    `on_death` is called: the trainer then reports NOT_SERVING and exits, so that whatever
    supervises it starts a fresh one.
    """

    def __init__(self, bootstrap: str, trainer: Trainer, stop: threading.Event, *,
                 topic: str = lk.TRAINING_JOBS, group: str = lk.TRAINER_GROUP,
                 max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
                 on_death: Callable[[str], None] | None = None,
                 connect: Callable[[], object] | None = None):
        """
        Args:
            bootstrap: Kafka bootstrap servers.
            trainer: runs each job.
            stop: set to stop consuming (a job in flight is left uncommitted).
            topic, group, max_poll_interval_ms: the job topic and consumer group, and the
                consumer's max.poll.interval.ms (tests use their own).
            on_death: called with the reason when the poll loop fails.
            connect: makes the Kafka consumer (default: `loupe_common.kafka.consumer`).
        """
        self.bootstrap = bootstrap
        self.trainer = trainer
        self.stop = stop
        self.topic, self.group = topic, group
        self.max_poll_interval_ms = max_poll_interval_ms
        self.on_death = on_death or (lambda reason: None)
        self._connect = connect or self._kafka_consumer
        self.ready = threading.Event()
        #: How many job partitions the group has given this trainer (read by DescribeTrainer).
        self.assigned_partitions = 0
        #: Why the poll loop ended on its own ("" while it runs, or after a requested stop).
        self.failure = ""

    def _kafka_consumer(self):
        return lk.consumer(
            self.bootstrap, self.topic, self.group,
            # A dead trainer is noticed after the session timeout.
            session_timeout_ms=10000, heartbeat_interval_ms=2000,
            max_poll_interval_ms=self.max_poll_interval_ms,
        )

    def run(self) -> None:
        """The poll loop (the consumer thread's target)."""
        try:
            consumer = self._connect()
        except Exception as err:  # noqa: BLE001 - reported as the consumer's death
            self._died(err)
            return
        self.ready.set()
        try:
            self._poll_loop(consumer)
        except Exception as err:  # noqa: BLE001 - whatever ends the loop ends the trainer
            self._died(err)
        finally:
            try:
                consumer.close(autocommit=False)
            except Exception:  # noqa: BLE001 - closing a broken client may fail too
                log.warning("closing the job consumer failed", exc_info=True)

    def _died(self, err: BaseException) -> None:
        self.failure = f"job consumer died: {type(err).__name__}: {err}"
        log.error("%s", self.failure, exc_info=err)
        self.ready.set()
        self.on_death(self.failure)

    def _poll_loop(self, consumer) -> None:
        job: _RunningJob | None = None
        while not self.stop.is_set():
            if job is not None and job.done.is_set():
                self._finish(consumer, job)
                job = None
            if job is not None:
                # A rebalance may have assigned partitions since the job started: pause them too.
                consumer.pause(*consumer.assignment())
            batches = consumer.poll(timeout_ms=int(POLL_SECONDS * 1000), max_records=1)
            self.assigned_partitions = len(consumer.assignment())
            for tp, records in batches.items():
                for record in records:
                    if job is not None:
                        # Fetched from a partition assigned during the poll, before it could
                        # be paused: hand it back; it is polled again after this job.
                        consumer.seek(tp, record.offset)
                        consumer.pause(tp)
                        continue
                    consumer.pause(*consumer.assignment())
                    job = _RunningJob(tp, record.offset, record.value, self._handle)
        if job is not None and job.done.wait(STOP_WAIT_SECONDS):
            self._finish(consumer, job)
        # else: stopping mid-job leaves its offset uncommitted, so the job is redelivered.

    def _finish(self, consumer, job: _RunningJob) -> None:
        """Commits a handled job's offset and resumes fetching."""
        if job.commit:
            try:
                consumer.commit({job.partition: OffsetAndMetadata(job.offset + 1, "", -1)})
            except (CommitFailedError, KafkaError) as err:
                # The group took the partition away meanwhile (a rebalance, a broker restart):
                # its new owner gets the job again and finds the iteration finished.
                log.warning("could not commit job %s@%d (%s): it will be redelivered",
                            job.partition, job.offset, err)
        consumer.resume(*consumer.paused())

    def _handle(self, payload: bytes) -> bool:
        """Handles one job (on the job's thread).

        Returns:
            whether its offset is to be committed (False: stopping mid-job).
        """
        try:
            job = tpb.TrainingJob.FromString(payload)
        except Exception:  # noqa: BLE001 - a poison message must not block the partition
            log.exception("undecodable training job dropped")
            JOBS.labels("undecodable").inc()
            return True
        started = time.monotonic()
        tries = 0
        while not self.stop.is_set():
            try:
                outcome = self.trainer.run_job(job)
            except Unavailable as err:
                log.warning("backend unavailable (%s); retrying job %s", err, job.iteration_id)
                self.stop.wait(RETRY_SECONDS)
                continue
            except Exception:  # noqa: BLE001 - the trainer could not even record a failure
                tries += 1
                log.exception("job %s raised (try %d of %d)", job.iteration_id, tries, JOB_TRIES)
                if tries >= JOB_TRIES:
                    JOBS.labels("failed").inc()
                    JOB_SECONDS.observe(time.monotonic() - started)
                    return True
                self.stop.wait(RETRY_SECONDS)
                continue
            JOBS.labels(outcome.status.lower()).inc()
            JOB_SECONDS.observe(time.monotonic() - started)
            return True
        return False


class _RunningJob:
    """One job on its own (daemon) thread: a trainer killed or stopped mid-job must not wait."""

    def __init__(self, partition: TopicPartition, offset: int, payload: bytes,
                 handle: Callable[[bytes], bool]):
        self.partition, self.offset = partition, offset
        self.commit = False
        self.done = threading.Event()

        def target() -> None:
            try:
                self.commit = handle(payload)
            finally:
                self.done.set()

        threading.Thread(target=target, name=f"job-{partition.partition}@{offset}", daemon=True).start()
