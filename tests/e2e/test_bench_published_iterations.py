"""A short run of bench/published_iterations.py against the test stack: 12 published iterations,
each answering its first prediction (its head loaded from storage) and its second (cached).
Numbers are printed (-s), not asserted; the 1,000-iteration run is the one in the README."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import published_iterations  # noqa: E402

pytestmark = pytest.mark.e2e


def test_many_published_iterations_each_answer_and_the_project_goes_after(live, api, tmp_path):
    out = tmp_path / "many.json"
    before = {p["id"] for p in api.train("GET", "/projects")}
    assert published_iterations.main(["--env", str(live.layout.env_file), "--iterations", "12",
                                      "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["iterations"] == 12
    for key in ("first_prediction_ms", "cached_prediction_ms"):
        assert result[key]["max"] >= result[key]["p95"] >= result[key]["p50"] > 0
    assert result["rss_mb_before"]["prediction"] > 0, "the stack's prediction process was not found"
    assert {p["id"] for p in api.train("GET", "/projects")} == before, "the bench left its project"
