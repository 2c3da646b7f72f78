"""End-to-end fixtures: the REST client (tests/rest_api.py) and the official SDK's clients."""
from __future__ import annotations

import pytest

from rest_api import PREDICTION, TRAINING, Api, sdk_clients  # noqa: F401 - re-exported to the e2e tests


@pytest.fixture(scope="session")
def api(live_env) -> Api:
    return Api(live_env["LOUPE_ENDPOINT"], live_env["LOUPE_TRAINING_KEY"],
               live_env["LOUPE_PREDICTION_KEY"], live_env["LOUPE_PREDICTION_RESOURCE_ID"])


@pytest.fixture(scope="session")
def clients(live_env):
    """The official SDK's training and prediction clients, and the prediction resource id."""
    return sdk_clients(live_env)
