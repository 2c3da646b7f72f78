"""docs/sdk-operations.md lists every operation of the official SDK exactly once, and each one
marked "works" is really called by the end-to-end test file the table names."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.prediction.operations import (
    CustomVisionPredictionClientOperationsMixin,
)
from azure.cognitiveservices.vision.customvision.training.operations import (
    CustomVisionTrainingClientOperationsMixin,
)

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<op>[a-z_]+)` \| (?P<status>works|not applicable) \| (?P<where>[^|]*)\|$")


def _sdk_operations() -> set[str]:
    ops = set()
    for mixin in (CustomVisionTrainingClientOperationsMixin, CustomVisionPredictionClientOperationsMixin):
        ops |= {name for name, _ in inspect.getmembers(mixin, inspect.isfunction) if not name.startswith("_")}
    return ops


def _rows() -> list[re.Match]:
    lines = (REPO / "docs/sdk-operations.md").read_text().splitlines()
    return [m for m in (ROW.match(line.strip()) for line in lines) if m]


def test_every_sdk_operation_is_listed_once():
    listed = [m["op"] for m in _rows()]
    assert len(listed) == len(set(listed)), "an operation is listed twice"
    assert set(listed) == _sdk_operations()


def test_each_working_operation_is_called_by_the_tests_named():
    for m in _rows():
        if m["status"] != "works":
            assert m["where"].strip(), f"{m['op']}: say why it does not apply"
            continue
        files = [f.strip() for f in m["where"].split(",") if f.strip()]
        assert files, f"{m['op']} works but names no test"
        for name in files:
            text = (REPO / "tests/e2e" / name).read_text()
            assert re.search(rf"\.{m['op']}\(", text), f"{name} does not call {m['op']}"
