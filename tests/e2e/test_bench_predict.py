"""A short run of `make bench-predict` (bench/predict.py) against the test stack: the benchmark
works end to end, and what it checks holds (the service's probabilities equal the iteration's
ONNX export's). Its speed numbers are printed (run with -s), not asserted: the full run is the
one in the README."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import predict  # noqa: E402

pytestmark = pytest.mark.e2e


def test_the_prediction_benchmark_runs_and_the_service_agrees_with_the_export(live, tmp_path):
    out = tmp_path / "predict.json"
    assert predict.main(["--env", str(live.layout.env_file), "--requests", "16",
                         "--concurrency", "1", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["max_probability_difference"] < 1e-5
    assert result["model_only"]["images_per_s_batch8"] > 0
    paths = {(r["path"], r["concurrency"]) for r in result["rows"]}
    assert paths == {(p, c) for p in ("REST", "gRPC stream", "gRPC pipelined") for c in (1, 2)}
    assert all(r["images_per_s"] > 0 and r["p95_ms"] >= r["p50_ms"] > 0 for r in result["rows"])
    # The CPU profile found the test stack's processes, TorchServe's workers included.
    profile = result["cpu_ms_per_rest_request"]
    assert {"gateway", "prediction", "torchserve", "client"} <= set(profile)
    assert profile["torchserve"] > 1.0, profile
