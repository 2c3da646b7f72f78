"""The reconciler's pass (loupe_gateway.reconciler) over a stand-in of the gateway's backends:
what it produces, marks and fails, in which order, and where it stops (no I/O)."""
from __future__ import annotations

import threading

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import Unavailable
from loupe_common.timeutil import to_proto, utcnow
from loupe_gateway import reconciler

pytestmark = pytest.mark.unit


def _pending(n: int) -> mpb.PendingTrainingJob:
    return mpb.PendingTrainingJob(
        iteration_id=f"it-{n}", project_id=f"p-{n}", account_id="a", training_type="Advanced",
        reserved_budget_in_hours=2.0, topic="jobs", created=to_proto(utcnow()), resends=1)


class Backends:
    """Records the reconciler's calls; Kafka refuses the jobs named in `refuse`."""

    def __init__(self, pending, stale=(), refuse=()):
        self.pending, self.stale, self.refuse = list(pending), list(stale), set(refuse)
        self.calls: list[tuple] = []

    def claim_training_jobs(self, unsent_seconds, limit):
        self.calls.append(("claim", unsent_seconds, limit))
        return self.pending

    def send_training_job(self, job, topic):
        self.calls.append(("send", job.iteration_id, topic))
        if job.iteration_id in self.refuse:
            raise Unavailable("kafka away", "ErrorProjectTrainingRequestFailed")

    def mark_training_job_sent(self, iteration_id):
        self.calls.append(("mark", iteration_id))

    def fail_stale_iterations(self, untouched_seconds, limit):
        self.calls.append(("fail", untouched_seconds, limit))
        return self.stale


def _reconciler(backends, start_timeout_s=60.0):
    return reconciler.Reconciler(backends, threading.Event(), interval_s=1, resend_after_s=30,
                                 start_timeout_s=start_timeout_s)


def test_the_job_produced_is_the_one_the_gateway_would_have_produced():
    pending = _pending(1)
    job = reconciler.training_job(pending)
    assert (job.iteration_id, job.project_id, job.account_id, job.training_type,
            job.reserved_budget_in_hours) == ("it-1", "p-1", "a", "Advanced", 2.0)
    assert job.requested_at == pending.created


def test_a_pass_produces_each_unsent_job_then_marks_it_then_fails_stale_iterations():
    backends = Backends([_pending(1), _pending(2)], stale=["it-9"])
    assert _reconciler(backends).run_once() == reconciler.Pass(resent=2, failed=1)
    assert backends.calls == [
        ("claim", 30, reconciler.BATCH),
        ("send", "it-1", "jobs"), ("mark", "it-1"),
        ("send", "it-2", "jobs"), ("mark", "it-2"),
        ("fail", 60.0, reconciler.BATCH),
    ]


def test_a_pass_stops_producing_at_the_first_job_kafka_refuses():
    backends = Backends([_pending(1), _pending(2), _pending(3)], refuse={"it-2"})
    assert _reconciler(backends).run_once().resent == 1
    assert ("send", "it-3", "jobs") not in backends.calls
    assert ("mark", "it-2") not in backends.calls  # offered again after resend_after_s


def test_no_start_timeout_fails_nothing():
    backends = Backends([], stale=["it-9"])
    assert _reconciler(backends, start_timeout_s=0).run_once() == reconciler.Pass(0, 0)
    assert [c[0] for c in backends.calls] == ["claim"]


def test_start_runs_no_thread_when_the_interval_is_zero(gateway_env):
    from loupe_common.config import load
    from loupe_gateway.config import GatewayConfig

    config = load(GatewayConfig, dict(gateway_env, LOUPE_RECONCILE_INTERVAL_S="0"))
    stop, thread = reconciler.start(Backends([]), config)
    assert thread is None and not stop.is_set()
