"""End-to-end fixtures: the REST client (tests/rest_api.py) and the official SDK's clients."""
from __future__ import annotations

import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from rest_api import PREDICTION, TRAINING, Api  # noqa: F401 - re-exported to the e2e tests


@pytest.fixture(scope="session")
def api(live_env) -> Api:
    return Api(live_env["LOUPE_ENDPOINT"], live_env["LOUPE_TRAINING_KEY"],
               live_env["LOUPE_PREDICTION_KEY"], live_env["LOUPE_PREDICTION_RESOURCE_ID"])


@pytest.fixture(scope="session")
def clients(live_env):
    """The official SDK's training and prediction clients, and the prediction resource id."""
    endpoint = live_env["LOUPE_ENDPOINT"]
    trainer = CustomVisionTrainingClient(
        endpoint, ApiKeyCredentials(in_headers={"Training-key": live_env["LOUPE_TRAINING_KEY"]}))
    predictor = CustomVisionPredictionClient(
        endpoint, ApiKeyCredentials(in_headers={"Prediction-key": live_env["LOUPE_PREDICTION_KEY"]}))
    return trainer, predictor, live_env["LOUPE_PREDICTION_RESOURCE_ID"]
