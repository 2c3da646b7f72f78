"""API versions in paths: Custom Vision's Training v3.0-v3.4-preview and Prediction v3.0-v3.1.

The versions are URL converters, so `/customvision/<tver:version>/training/...` matches only a
known version and anything else falls through to the JSON 404.
"""
from __future__ import annotations

import re

from werkzeug.routing import BaseConverter

TRAINING_VERSIONS = ("v3.0", "v3.1", "v3.2", "v3.3", "v3.4-preview")
PREDICTION_VERSIONS = ("v3.0", "v3.1")


def _regex(versions: tuple[str, ...]) -> str:
    return "|".join(re.escape(v) for v in versions)


class TrainingVersion(BaseConverter):
    regex = _regex(TRAINING_VERSIONS)


class PredictionVersion(BaseConverter):
    regex = _regex(PREDICTION_VERSIONS)


TRAINING_PREFIX = "/customvision/<tver:version>/training"
PREDICTION_PREFIX = "/customvision/<pver:version>/prediction"


def register(app) -> None:
    app.url_map.converters["tver"] = TrainingVersion
    app.url_map.converters["pver"] = PredictionVersion
