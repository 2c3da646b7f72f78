"""The Helm chart lints, renders for every ci/*-values.yaml scenario and validates offline
against the Kubernetes API types (deploy/helm/check.sh; builds helm once with go install)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.chart

REPO = Path(__file__).resolve().parents[1]


def test_chart_check_passes():
    result = subprocess.run(["bash", str(REPO / "deploy/helm/check.sh")], capture_output=True, text=True,
                            timeout=1200, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
