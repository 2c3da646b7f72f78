"""Quota checks (pure) and their defaults: Custom Vision's S0 limits, 0 for no limit."""
from __future__ import annotations

import pytest

from loupe_common.config import load
from loupe_common.errors import BadRequest
from loupe_metadata.config import MetadataConfig
from loupe_metadata.quotas import Quotas, check

pytestmark = pytest.mark.unit


def test_defaults_are_custom_visions_s0_limits():
    q = load(MetadataConfig, {"LOUPE_POSTGRES_DSN": "postgresql://x", "LOUPE_INTERNAL_SECRET": "s"}).quotas()
    assert q == Quotas(projects_per_account=100, tags_per_project=500, images_per_project=100_000,
                       stored_predictions_per_account=1_000_000)


@pytest.mark.parametrize("kind, code", [("projects", "BadRequestExceedProjectLimit"),
                                        ("tags", "BadRequestExceedTagPerProjectLimit"),
                                        ("images", "BadRequestImageExceededCount")])
def test_over_the_quota_is_refused_with_custom_visions_code(kind, code):
    q = Quotas(projects_per_account=2, tags_per_project=2, images_per_project=2)
    check(q, kind, 2)  # at the quota: fine
    with pytest.raises(BadRequest) as err:
        check(q, kind, 3)
    assert err.value.code == code and "quota of 2" in err.value.message


def test_zero_is_no_limit():
    check(Quotas(0, 0, 0), "images", 10**9)
