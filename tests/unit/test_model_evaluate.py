"""loupe_model.evaluate: held-out cross-validation and the performance figures."""

from __future__ import annotations

import numpy as np
import pytest

import loupe_model.evaluate as evaluate
from loupe_model.evaluate import (
    Evaluation,
    assign_folds,
    average_precision,
    choose_num_folds,
    cross_validate,
    max_folds_for,
    performance,
)
from loupe_model.head import LINEAR, MLP, fit_layers, fit_linear, l2_normalize

TAG_IDS = ["t0", "t1", "t2"]
TAG_NAMES = ["zero", "one", "never"]


def hand_example() -> Evaluation:
    # Two folds of three images; tag "never" has no image and is never predicted.
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], float)
    probs = np.array(
        [[0.9, 0.1, 0], [0.4, 0.6, 0], [0.2, 0.8, 0], [0.7, 0.3, 0], [0.6, 0.4, 0], [0.3, 0.7, 0]]
    )
    return Evaluation(probs, labels, np.array([0, 0, 0, 1, 1, 1]), 2, False, 0)


def test_performance_hand_computed():
    perf = performance(hand_example(), 0.5, TAG_IDS, TAG_NAMES)
    zero, one, never = perf["per_tag"]
    # tag zero: TP i0,i3; FP i4; FN i1. Fold 0: P=1, R=1/2; fold 1: P=1/2, R=1.
    assert zero["id"] == "t0" and zero["name"] == "zero" and zero["image_count"] == 3
    assert zero["precision"] == pytest.approx(2 / 3)
    assert zero["recall"] == pytest.approx(2 / 3)
    assert zero["precision_std_deviation"] == pytest.approx(0.25)
    assert zero["recall_std_deviation"] == pytest.approx(0.25)
    # Ranking for tag zero: .9+ .7+ .6- .4+ .3- .2-  ->  AP = 1/3 + 1/3 + 1/3 * 3/4.
    assert zero["average_precision"] == pytest.approx(11 / 12)
    assert one["precision"] == pytest.approx(2 / 3) and one["recall"] == pytest.approx(2 / 3)
    assert one["average_precision"] == pytest.approx(11 / 12)
    # Undefined ratios are reported as 0 (documented convention).
    assert never == {
        "id": "t2", "name": "never", "image_count": 0,
        "precision": 0.0, "precision_std_deviation": 0.0,
        "recall": 0.0, "recall_std_deviation": 0.0, "average_precision": 0.0,
    }
    # Micro: TP 4, FP 2, FN 2; each fold has TP 2, FP 1, FN 1 -> std 0.
    assert perf["precision"] == pytest.approx(4 / 6) and perf["recall"] == pytest.approx(4 / 6)
    assert perf["precision_std_deviation"] == 0.0 and perf["recall_std_deviation"] == 0.0
    # Pooled pairs: .9+ .8+ .7+ .7+ .6- .6- .4+ .4+ ... -> 4/6 * 1 + 2/6 * 6/8.
    assert perf["average_precision"] == pytest.approx(11 / 12)
    assert perf["mean_average_precision"] == pytest.approx(11 / 12)
    assert (perf["image_count"], perf["num_folds"], perf["threshold"]) == (6, 2, 0.5)


def test_threshold_changes_predictions():
    perf = performance(hand_example(), 0.95, TAG_IDS, TAG_NAMES)
    assert perf["precision"] == 0.0 and perf["recall"] == 0.0  # nothing predicted
    assert perf["average_precision"] == pytest.approx(11 / 12)  # AP ignores the threshold
    low = performance(hand_example(), 0.0, TAG_IDS, TAG_NAMES)
    assert low["recall"] == 1.0  # every tag predicted for every image


def test_average_precision_matches_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        if y.sum() == 0:
            continue
        s = np.round(rng.random(40), 1)  # many ties
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s))
    assert average_precision([0.3, 0.3, 0.3, 0.3], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert average_precision([0.9, 0.1], [0, 0]) == 0.0


def test_cross_validation_never_predicts_with_a_head_that_saw_the_image(monkeypatch):
    # Every training call is spied on; row 0 of each feature vector is the image's index.
    n, d = 40, 16
    rng = np.random.default_rng(1)
    features = rng.normal(size=(n, d)).astype(np.float32)
    features[:, 0] = np.arange(n) + 100.0
    labels = np.eye(2)[rng.integers(0, 2, n)]
    seen_by_head: list[set[int]] = []

    def spy(f, *args, **kwargs):
        seen_by_head.append({int(round(v)) - 100 for v in f[:, 0]})
        return fit_layers(f, *args, **kwargs)

    monkeypatch.setattr(evaluate, "fit_layers", spy)
    ev = cross_validate(features, labels, False, seed=3)
    assert len(seen_by_head) == ev.num_folds == 10  # under 20 images in a tag: up to 10 folds
    for fold, seen in enumerate(seen_by_head):
        held_out = set(np.flatnonzero(ev.folds == fold).tolist())
        assert held_out and not (held_out & seen)
        assert held_out | seen == set(range(n))


def test_memorisable_noise_scores_chance_when_held_out():
    # Random labels on random high-dimensional points: a head that saw an image recalls
    # its label perfectly, a head that did not can only guess.
    n, d = 60, 256
    rng = np.random.default_rng(2)
    features = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, 2, n)
    labels = np.eye(2)[y]
    weights, bias = fit_linear(features, labels, False, 0, C=1000.0)
    memorised = (l2_normalize(features) @ weights.T + bias).argmax(axis=1)
    assert (memorised == y).mean() == 1.0
    ev = cross_validate(features, labels, False, seed=0, C=1000.0)
    held_out_accuracy = (ev.probabilities.argmax(axis=1) == y).mean()
    assert held_out_accuracy < 0.7


def test_tiny_multiclass_two_tags_five_images():
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 5)
    features = (np.eye(2)[y] @ rng.normal(size=(2, 8)) * 5 + rng.normal(size=(10, 8))).astype(np.float32)
    ev = cross_validate(features, np.eye(2)[y], False, seed=0)
    assert ev.num_folds == 5
    for fold in range(5):  # stratified: one image of each tag per fold
        assert sorted(y[ev.folds == fold].tolist()) == [0, 1]
    np.testing.assert_allclose(ev.probabilities.sum(axis=1), 1.0)
    assert (ev.probabilities.argmax(axis=1) == y).mean() >= 0.8
    perf = performance(ev, 0.5, ["a", "b"], ["A", "B"])
    assert 0.0 <= perf["precision"] <= 1.0 and len(perf["per_tag"]) == 2


def test_fold_count_follows_the_rarest_tag():
    assert choose_num_folds(np.eye(2)[[0] * 20 + [1] * 2]) == 2
    assert choose_num_folds(np.eye(2)[[0] * 20 + [1] * 3]) == 3
    assert choose_num_folds(np.eye(2)[[0] * 20 + [1] * 30]) == 5
    assert choose_num_folds(np.eye(3)[[0] * 20 + [1] * 1]) == 2  # floor of 2 folds
    assert choose_num_folds(np.eye(2)[[0] * 20 + [1] * 30], max_folds=10) == 10


def test_fold_cap_depends_on_images_per_tag_project_size_and_head_kind():
    def labels(per_tag: int, tags: int = 3) -> np.ndarray:
        return np.eye(tags)[np.repeat(np.arange(tags), per_tag)]

    assert max_folds_for(labels(10), LINEAR) == 10  # steep part of the learning curve
    assert max_folds_for(labels(19), LINEAR) == 10 and max_folds_for(labels(20), LINEAR) == 5
    assert max_folds_for(labels(10, tags=101), LINEAR) == 5  # 1010 images: fits get slower
    assert max_folds_for(labels(10), MLP) == 5  # each hidden-layer fit takes seconds
    features = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    two = np.eye(2)[[0, 1] * 15]
    assert cross_validate(features, two, False, seed=0).num_folds == 10
    # cross_validate with the hidden-layer head (5 torch fits) is in tests/model/test_model_mlp.py.


def test_multilabel_folds_spread_every_tag():
    rng = np.random.default_rng(5)
    labels = (rng.random((37, 4)) < [0.5, 0.3, 0.6, 0.0]).astype(float)
    labels[:4, 3] = 1  # a rare tag with 4 images
    k = choose_num_folds(labels)
    assert k == 4
    folds = assign_folds(labels, True, seed=1, num_folds=k)
    sizes = np.bincount(folds, minlength=k)
    assert sizes.max() - sizes.min() <= 1
    for tag in range(4):  # every tag (each has >= k images) is in every fold
        assert np.bincount(folds[labels[:, tag] > 0], minlength=k).min() >= 1


def test_cross_validate_multilabel_and_json_round_trip():
    rng = np.random.default_rng(6)
    labels = (rng.random((30, 3)) < 0.4).astype(np.float32)
    labels[:5, 2] = 1
    features = (labels @ rng.normal(size=(3, 16)) * 4 + rng.normal(size=(30, 16))).astype(np.float32)
    ev = cross_validate(features, labels, True, seed=2)
    assert ev.multilabel and ev.probabilities.shape == (30, 3)
    loaded = Evaluation.from_json(ev.to_json())
    np.testing.assert_allclose(loaded.probabilities, ev.probabilities, atol=1e-6)
    np.testing.assert_array_equal(loaded.labels, ev.labels)
    np.testing.assert_array_equal(loaded.folds, ev.folds)
    assert (loaded.num_folds, loaded.multilabel, loaded.seed) == (ev.num_folds, True, 2)
    ids = ["a", "b", "c"]
    before, after = performance(ev, 0.5, ids, ids), performance(loaded, 0.5, ids, ids)
    for key in ("precision", "recall", "average_precision", "mean_average_precision"):
        assert after[key] == pytest.approx(before[key], abs=1e-5)


def test_cross_validate_input_checks():
    with pytest.raises(ValueError):
        cross_validate(np.zeros((1, 4)), np.ones((1, 2)), False, 0)
    with pytest.raises(ValueError):
        cross_validate(np.zeros((3, 4)), np.ones((2, 2)), False, 0)
    with pytest.raises(ValueError):
        performance(hand_example(), 0.5, ["only-one"], ["only-one"])
    with pytest.raises(ValueError):
        Evaluation.from_json(b'{"format": "something-else"}')


def test_logit_scale_makes_precision_equal_recall_at_half():
    # Timid but mostly right logits: at scale 1 nearly nothing reaches 0.5.
    from loupe_model.evaluate import LOGIT_SCALES, fit_logit_scale
    from loupe_model.head import activate

    rng = np.random.default_rng(0)
    n, t = 200, 10
    y = rng.integers(0, t, n)
    logits = rng.normal(scale=0.3, size=(n, t))
    right = rng.random(n) < 0.8
    logits[np.arange(n), np.where(right, y, (y + 1) % t)] += 1.0
    labels = np.eye(t)[y]
    scale = fit_logit_scale(logits, labels, False)
    assert scale in LOGIT_SCALES and scale > 1.0
    assert fit_logit_scale(logits, labels, False) == scale  # deterministic
    predicted = activate(logits * scale, False) >= 0.5
    tp = (predicted & (labels > 0.5)).sum()
    precision, recall = tp / predicted.sum(), tp / n
    accuracy = (logits.argmax(1) == y).mean()
    assert abs(precision - recall) < 0.03 and abs(recall - accuracy) < 0.05
    ev = cross_validate(rng.normal(size=(40, 8)), np.eye(2)[rng.integers(0, 2, 40)], False, 0, calibrate=True)
    assert ev.logit_scale in LOGIT_SCALES
    assert Evaluation.from_json(ev.to_json()).logit_scale == ev.logit_scale
