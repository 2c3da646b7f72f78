"""Prometheus metrics of the REST API, by route template (not raw path) and status."""
from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from loupe_common import procmetrics  # noqa: F401 - registers the process gauges

REQUESTS = Counter(
    "loupe_gateway_requests_total", "HTTP requests handled", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "loupe_gateway_request_seconds", "Time to handle an HTTP request", ["method", "endpoint"]
)


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "unmatched"


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response):
        started = g.get("request_started")
        endpoint = _endpoint()
        REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if started is not None:
            LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
