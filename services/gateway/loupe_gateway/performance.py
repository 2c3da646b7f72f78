"""Iteration performance recomputed from the stored held-out evaluation.

The trainer stores, per iteration, every training image's held-out probabilities
(`loupe_model.evaluate.Evaluation`), the image id of each row and the figures at threshold 0.5
(whose `per_tag` lists the tags in the evaluation's column order). From these, the figures at any
threshold and the per-image predictions of `…/performance/images` are pure computations.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loupe.v1 import metadata_pb2 as mpb
from loupe_common.errors import NotFound
from loupe_common.performance import performance_proto
from loupe_model.evaluate import Evaluation, performance


@dataclass(frozen=True)
class StoredEvaluation:
    """An iteration's evaluation with its row (image) and column (tag) names."""

    evaluation: Evaluation
    image_ids: list[str]
    tag_ids: list[str]
    tag_names: list[str]


def load(it: mpb.Iteration) -> StoredEvaluation:
    """The iteration's evaluation.

    Raises:
        NotFound (NotFoundIterationPerformance): the iteration carries none (or an unreadable
            one, e.g. written by a newer format).
    """
    if not it.evaluation:
        raise NotFound(f"{it.name} has no performance", "NotFoundIterationPerformance")
    try:
        evaluation = Evaluation.from_json(it.evaluation)
    except ValueError:
        raise NotFound(
            f"{it.name} has no readable evaluation", "NotFoundIterationPerformance"
        ) from None
    tag_ids = [t.tag_id for t in it.performance.per_tag]
    tag_names = [t.name for t in it.performance.per_tag]
    columns = evaluation.labels.shape[1] if evaluation.labels.ndim == 2 else 0
    image_ids = list(it.evaluation_image_ids)
    if len(tag_ids) != columns or len(image_ids) not in (0, evaluation.labels.shape[0]):
        raise NotFound(f"{it.name} has an inconsistent evaluation", "NotFoundIterationPerformance")
    return StoredEvaluation(evaluation, image_ids, tag_ids, tag_names)


def at_threshold(stored: StoredEvaluation, threshold: float) -> mpb.Performance:
    """Precision, recall and AP (with std deviations), overall and per tag, at `threshold`."""
    return performance_proto(performance(stored.evaluation, threshold, stored.tag_ids, stored.tag_names))


def images_with_tags(stored: StoredEvaluation, tag_ids: Sequence[str]) -> list[str]:
    """Ids of the evaluated images truly tagged (at training time) with any of `tag_ids`, or
    every evaluated image when `tag_ids` is empty, in evaluation order."""
    if not tag_ids:
        return list(stored.image_ids)
    wanted = [j for j, t in enumerate(stored.tag_ids) if t.lower() in {x.lower() for x in tag_ids}]
    if not wanted:
        return []
    truth = np.asarray(stored.evaluation.labels)[:, wanted] > 0.5
    return [image_id for image_id, row in zip(stored.image_ids, truth) if row.any()]


def predictions_of(stored: StoredEvaluation) -> dict[str, list[tuple[str, str, float]]]:
    """Held-out (tag_id, tag_name, probability) per image id, highest probability first."""
    probs = np.asarray(stored.evaluation.probabilities, dtype=np.float64)
    out: dict[str, list[tuple[str, str, float]]] = {}
    for image_id, row in zip(stored.image_ids, probs):
        ranked = sorted(
            zip(stored.tag_ids, stored.tag_names, (float(p) for p in row)),
            key=lambda x: x[2], reverse=True,
        )
        out[image_id] = ranked
    return out
