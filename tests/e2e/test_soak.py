"""The 60-second version of `make load` (bench/soak.py): mixed locust traffic from several
accounts against the test stack; no answer may be a 5xx. The printed report (run with -s) has
p50/p95 per operation and each process's memory slope; the 10-minute run in `make load` is the
one whose slopes mean something (the goal there: < 5 MB/min per process)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import soak  # noqa: E402

pytestmark = pytest.mark.e2e


def test_a_minute_of_mixed_traffic_from_three_accounts_answers_no_5xx(live):
    report = soak.run(live, duration=60, users=8, accounts=3, warmup=20, sample=2)
    soak.print_report(report)
    assert report["server_errors"] == {}, report["server_errors"]
    ops = report["operations"]
    for name in ("classify", "classify+store", "upload", "query", "list", "train", "delete images"):
        assert ops.get(name, {}).get("requests", 0) > 0, f"{name} never ran: {sorted(ops)}"
        assert ops[name]["failures"] == 0, (name, ops[name])
    # Every process of the stack was sampled through the run.
    assert sorted(report["memory"]) == sorted(soak.PROGRAMS), report["memory"]
