"""Pure parts of the training service."""
from __future__ import annotations

import pytest

from loupe_common import config as cfg
from loupe_training.config import TrainingConfig
from loupe_common.performance import performance_proto
from loupe_training.core import feature_key, seed_for

pytestmark = pytest.mark.unit


def test_seed_is_fixed_per_iteration():
    a, b = "6f0c3a52-1111-4e0e-9a0e-000000000001", "6f0c3a52-1111-4e0e-9a0e-000000000002"
    assert seed_for(a) == seed_for(a)
    assert seed_for(a) != seed_for(b)
    assert 0 <= seed_for(a) < 2**32


def test_feature_cache_key_names_backbone_project_and_image():
    key = feature_key("p1", "ab" * 32)
    assert key == f"features/lite0-ms1/p1/{'ab' * 32}"


def test_performance_dict_maps_to_proto():
    perf = {"threshold": 0.5, "precision": 0.9, "precision_std_deviation": 0.01, "recall": 0.8,
            "recall_std_deviation": 0.02, "average_precision": 0.95,
            "per_tag": [{"id": "t", "name": "n", "precision": 1.0, "precision_std_deviation": 0.0,
                         "recall": 0.5, "recall_std_deviation": 0.1, "average_precision": 0.7,
                         "image_count": 6}]}
    proto = performance_proto(perf)
    assert proto.precision == pytest.approx(0.9) and proto.recall == pytest.approx(0.8)
    assert proto.per_tag[0].name == "n" and proto.per_tag[0].image_count == 6


def test_config_names_the_missing_variables():
    with pytest.raises(SystemExit) as info:
        cfg.load(TrainingConfig, {})
    message = str(info.value)
    for name in ("LOUPE_KAFKA_BOOTSTRAP", "LOUPE_METADATA_TARGET", "LOUPE_STORAGE_TARGET",
                 "LOUPE_INTERNAL_SECRET"):
        assert name in message

