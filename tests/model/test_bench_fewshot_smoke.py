"""Smoke run of bench/fewshot.py (N=5, 3 classes, 1 draw) through the trainer's code path."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fewshot.py"


def test_fewshot_quick_runs_and_reports_sane_numbers(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_fewshot", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "fewshot.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Trainer.run_job" in printed and "| method | N=5 |" in printed and "peak RSS" in printed
    device = json.loads(out.read_text())["protocol"]["advanced_head_device"]
    assert device in ("cpu", "cuda") and f"the Advanced head trains on {device}" in printed
    result = json.loads(out.read_text())
    s = result["summary"]["5"]
    # 3 classes: chance is 1/3; T-shirt, trouser and pullover are easy apart.
    assert s["loupe_accuracy"] >= 0.7 and s["pixels_accuracy"] >= 0.5 and s["final_vector_accuracy"] >= 0.6
    assert 0.0 <= s["cv_precision"] <= 1.0 and 0.0 <= s["cv_recall"] <= 1.0
    assert 0.0 < s["train_seconds"] < 30.0 and 0.0 < s["retrain_seconds"] < s["train_seconds"] + 5.0
    assert result["peak_rss_mb"] > 0 and len(result["runs"]) == 1
    assert "Loupe Advanced training" in printed and "5 Advanced (linear head)" in printed
    assert s["advanced_accuracy"] >= 0.7 and 0.0 <= s["advanced_cv_precision"] <= 1.0
    assert 0.0 < s["advanced_train_seconds"] < 120.0
