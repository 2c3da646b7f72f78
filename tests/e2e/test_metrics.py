"""Every service of the running system serves Prometheus metrics, its peak memory included."""
from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.e2e

GRPC_SERVICES = ("metadata", "storage", "training", "prediction")


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_grpc_service_exports_its_peak_and_current_memory(live, service):
    resp = requests.get(f"http://{live.layout.addr(service + '_metrics')}/metrics", timeout=10)
    assert resp.status_code == 200
    peak = _value(resp.text, "loupe_process_peak_rss_bytes")
    current = _value(resp.text, "process_resident_memory_bytes")
    assert 10e6 < peak < 64e9
    # Read a moment apart in one scrape: the current size may have grown a little since.
    assert current <= peak * 1.05
    assert "loupe_grpc_server_handling_seconds" in resp.text
    if service == "training":
        assert "# HELP loupe_training_jobs_total" in resp.text


def test_gateway_exports_request_metrics_and_its_peak_memory(live, api):
    api.train("GET", "/projects")
    resp = requests.get(f"{api.endpoint}/metrics", timeout=10)
    assert resp.status_code == 200
    counted = [line for line in resp.text.splitlines()
               if line.startswith("loupe_gateway_requests_total{") and 'method="GET"' in line
               and 'status="200"' in line and re.search(r'endpoint="[^"]*/training/projects"', line)]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, resp.text[-3000:]
    assert 10e6 < _value(resp.text, "loupe_process_peak_rss_bytes") < 64e9
