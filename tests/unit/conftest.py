"""Fixtures of the unit tier."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gateway_env() -> dict[str, str]:
    """Every variable the gateway requires, pointing at an unreachable port: the backends'
    clients connect lazily, so an app built on this answers whatever needs no backend."""
    return {
        "LOUPE_METADATA_TARGET": "127.0.0.1:9",
        "LOUPE_STORAGE_TARGET": "127.0.0.1:9",
        "LOUPE_PREDICTION_TARGET": "127.0.0.1:9",
        "LOUPE_TRAINING_TARGET": "127.0.0.1:9",
        "LOUPE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
        "LOUPE_URL_SIGNING_SECRET": "test-secret",
        "LOUPE_INTERNAL_SECRET": "test-internal-secret",
    }
