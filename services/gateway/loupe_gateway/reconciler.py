"""The reconciler: what a gateway that died mid-way, or a job that was lost, leaves behind.

A training starts with one commit (the iteration and its job's row in metadata's outbox) and
then a Kafka send by the gateway that made it (flows/iterations.py). Each pass of this loop:
  1. produces again the jobs still unsent `resend_after_s` after they were written (their
     gateway died between the commit and the send, or Kafka was away), and marks them sent;
  2. fails the iterations in Training whose job no trainer has started `start_timeout_s` after
     it was sent (a lost job, no trainer running), with a message that says so, so the project
     can be trained again.
A job produced twice (its sender died after Kafka took it but before marking it sent) trains
once: both copies carry the project id as key, so they land on one partition, one after the
other, and the trainer skips a job whose iteration is no longer Training (loupe_training.core).

Every gateway replica runs the loop (the gateway is the one component that always runs: trainers
may be scaled to zero); metadata hands each unsent job to one replica at a time. Exports need no
pass: an `Exporting` record older than LOUPE_EXPORT_TIMEOUT_S counts as Failed wherever it is
read (loupe_common.exports.expired), so a new export can start.

Beside this loop, on a thread of its own, the orphan sweep (orphans.py) removes objects in
storage that no row references any more.
"""
from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from prometheus_client import Counter

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import training_pb2 as tpb
from loupe_common.errors import LoupeError, Unavailable

log = logging.getLogger(__name__)

RESENT = Counter("loupe_training_jobs_resent_total",
                 "Training jobs the reconciler produced because they stayed unsent")
STALE = Counter("loupe_iterations_failed_unstarted_total",
                "Iterations the reconciler failed because no trainer started their job")
PASS_ERRORS = Counter("loupe_reconciler_pass_errors_total",
                      "Reconciler passes that ended early on an error (a backend away)")
#: Jobs (and stale iterations) handled per metadata call.
BATCH = 50


def training_job(pending: mpb.PendingTrainingJob) -> tpb.TrainingJob:
    """The TrainingJob the gateway produced for `pending` (requested when it was written)."""
    return tpb.TrainingJob(
        iteration_id=pending.iteration_id, project_id=pending.project_id,
        account_id=pending.account_id, training_type=pending.training_type,
        reserved_budget_in_hours=pending.reserved_budget_in_hours, requested_at=pending.created,
    )


@dataclass(frozen=True)
class Pass:
    """What one pass did: jobs produced again, iterations failed."""

    resent: int = 0
    failed: int = 0


class Reconciler:
    """Runs the passes above every `interval_s` until `stop` is set.

    Args:
        backends: the gateway's `clients.Backends` (or a stand-in with the same methods).
        stop: set to end `run`.
        interval_s: time between passes (with ±10 % jitter, so replicas drift apart).
        resend_after_s: how long a job may stay unsent before it is produced again.
        start_timeout_s: how long a sent job may wait for a trainer; 0: forever.
    """

    def __init__(self, backends, stop: threading.Event, *, interval_s: float,
                 resend_after_s: float, start_timeout_s: float):
        self.backends = backends
        self.stop = stop
        self.interval_s = interval_s
        self.resend_after_s = resend_after_s
        self.start_timeout_s = start_timeout_s

    def run_once(self) -> Pass:
        """One pass. Stops producing at the first job Kafka refuses (the rest are offered
        again after `resend_after_s`); a job produced but not marked sent is produced again
        later, which its trainer skips."""
        resent = 0
        for pending in self.backends.claim_training_jobs(self.resend_after_s, BATCH):
            if self.stop.is_set():
                break
            try:
                self.backends.send_training_job(training_job(pending), pending.topic)
            except Unavailable as err:
                log.warning("reconciler: job of iteration %s still not produced: %s",
                            pending.iteration_id, err.message)
                break
            resent += 1
            RESENT.inc()
            log.warning("reconciler: produced the job of iteration %s, unsent since %s "
                        "(taken %d times)", pending.iteration_id,
                        pending.created.ToJsonString(), pending.resends)
            try:
                self.backends.mark_training_job_sent(pending.iteration_id)
            except LoupeError as err:
                log.warning("reconciler: job of %s produced but not marked sent: %s",
                            pending.iteration_id, err.message)
        failed = []
        if self.start_timeout_s > 0 and not self.stop.is_set():
            failed = self.backends.fail_stale_iterations(self.start_timeout_s, BATCH)
            STALE.inc(len(failed))
            for iteration_id in failed:
                log.warning("reconciler: iteration %s failed: no trainer started it within %g s",
                            iteration_id, self.start_timeout_s)
        return Pass(resent, len(failed))

    def run(self) -> None:
        """Passes until `stop` is set; a pass that fails (a backend away) is tried at the next."""
        delay = random.uniform(0, self.interval_s)  # not every replica at once after a rollout
        while not self.stop.wait(delay):
            try:
                self.run_once()
            except LoupeError as err:
                PASS_ERRORS.inc()
                log.warning("reconciler pass failed (%s); next one in %.0f s", err, self.interval_s)
            except Exception:  # noqa: BLE001 - the loop must outlive a bad pass
                PASS_ERRORS.inc()
                log.exception("reconciler pass failed")
            delay = self.interval_s * random.uniform(0.9, 1.1)


def start(backends, config) -> tuple[threading.Event, threading.Thread | None]:
    """Starts the reconciler of a gateway process on a daemon thread (none when
    LOUPE_RECONCILE_INTERVAL_S is 0). Returns (the event that stops it, the thread)."""
    stop = threading.Event()
    if config.reconcile_interval_s <= 0:
        return stop, None
    reconciler = Reconciler(backends, stop, interval_s=config.reconcile_interval_s,
                            resend_after_s=config.job_resend_after_s,
                            start_timeout_s=config.training_start_timeout_s)
    thread = threading.Thread(target=reconciler.run, name="reconciler", daemon=True)
    thread.start()
    return stop, thread
