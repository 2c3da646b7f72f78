"""The checked-in generated code is what `make protos` produces from protos/ today (protoc in a
subprocess, files compared: I/O, so not in the unit tier)."""
from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.service

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh(tmp_path):
    protos = sorted(str(p.relative_to(REPO / "protos")) for p in (REPO / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'protos'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        check=True, cwd=REPO,
    )
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    checked_in = REPO / "services/common"
    assert fresh, "protoc generated nothing"
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, checked_in / p, shallow=False)]
    assert not stale, f"run `make protos`: stale generated files {stale}"
    existing = {p.relative_to(checked_in) for p in (checked_in / "loupe/v1").glob("*_pb2*.py*")}
    assert existing == set(fresh), "generated files without a proto (or missing): run `make protos`"
