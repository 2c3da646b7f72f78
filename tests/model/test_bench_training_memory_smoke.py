"""Smoke run of bench/training_memory.py (a few small images, both ways of reading them)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

BENCH = Path(__file__).resolve().parents[2] / "bench" / "training_memory.py"


def test_training_memory_bench_reports_peak_rss_per_size(capsys):
    spec = importlib.util.spec_from_file_location("bench_training_memory", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--images", "5", "40", "--side", "128", "--chunk", "32", "all"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(r[0], r[1]) for r in rows] == [("5", "32"), ("40", "32"), ("5", "all"), ("40", "all")]
    for _n, _chunk, base, peak, growth, _secs in rows:
        assert float(peak) >= float(base) > 0 and float(growth) >= 0
