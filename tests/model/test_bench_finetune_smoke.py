"""Smoke run of bench/finetune.py (tiny: 2 images per class, 1 epoch) and its augmentation."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

BENCH = Path(__file__).resolve().parents[2] / "bench" / "finetune.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_finetune", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_augmentation_flips_and_zooms_within_the_image():
    import torch

    module = _module()
    # A horizontal ramp: a flip reverses it, a zoom narrows its range, nothing leaves [min, max].
    ramp = torch.linspace(-1.0, 1.0, 32).expand(64, 3, 32, 32).contiguous()
    out = module._augment(ramp, torch.Generator().manual_seed(0))
    assert out.shape == ramp.shape
    assert out.min() >= -1.0 - 1e-5 and out.max() <= 1.0 + 1e-5
    slope = out[:, 0, 16, -1] - out[:, 0, 16, 0]
    assert (slope < 0).any() and (slope > 0).any()  # some flipped, some not
    # Crops zoom in (never out): the ramp's visible range shrinks, by different amounts.
    assert (slope.abs() <= 2.0 + 1e-5).all() and (slope.abs() < 1.9).any()


def test_finetune_tiny_run_reports_the_curve(tmp_path, capsys):
    module = _module()
    out = tmp_path / "finetune.json"
    assert module.main(["--n", "2", "--draws", "1", "--epochs", "1", "--lr", "1e-4", "--heads", "linear",
                        "--test-per-class", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| head, lr | epoch 0 | epoch 1 | s/epoch |" in printed
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert set(row["accuracy"]) == {"0", "1"}
    assert all(0.0 <= a <= 1.0 for a in row["accuracy"].values())
    assert row["finetune_seconds"] > 0 and result["test_images"] == 20
