"""Pure parts of cancellation and determinism: the ETA and the content-derived seed."""
from __future__ import annotations

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe_training.core import eta_seconds, training_seed

pytestmark = pytest.mark.unit


def _training_set(iteration_id: str) -> mpb.GetTrainingSetResponse:
    return mpb.GetTrainingSetResponse(
        iteration=mpb.Iteration(id=iteration_id, status="Training", classification_type="Multiclass"),
        tags=[mpb.Tag(id=t, name=t) for t in ("a", "b")],
        images=[mpb.TrainingImage(image_id=f"i{i}", sha256=f"{i:064d}", tag_ids=["ab"[i % 2]])
                for i in range(10)],
    )


def test_eta_extrapolates_and_is_zero_when_unknown():
    assert eta_seconds(10.0, 25.0) == pytest.approx(30.0)
    assert eta_seconds(10.0, 0.0) == 0.0
    assert eta_seconds(10.0, 100.0) == 0.0


def test_training_seed_depends_on_content_not_iteration():
    a = _training_set("6f0c3a52-1111-4e0e-9a0e-000000000001")
    b = _training_set("6f0c3a52-1111-4e0e-9a0e-000000000002")
    assert training_seed(a) == training_seed(b)
    del b.images[0]
    assert training_seed(a) != training_seed(b)
