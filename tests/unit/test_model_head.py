"""loupe_model.head: training, applying and serialising linear heads."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from loupe_model.head import LINEAR, MLP, MULTICLASS, MULTILABEL, Head, train_head

D = 64


def clusters(n_per_class: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian clusters in D dimensions, like embeddings of distinct tags."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(size=(n_classes, D)) * 3
    x = np.concatenate([c + rng.normal(size=(n_per_class, D)) for c in centres])
    y = np.repeat(np.arange(n_classes), n_per_class)
    return x.astype(np.float32), y


def one_hot(y: np.ndarray, t: int) -> np.ndarray:
    return np.eye(t, dtype=np.float32)[y]


def tags(t: int) -> tuple[list[str], list[str]]:
    return [f"id-{i}" for i in range(t)], [f"tag {i}" for i in range(t)]


def train_multiclass(x, y, t, seed=0) -> Head:
    ids, names = tags(t)
    return train_head(x, one_hot(y, t), False, seed, ids, names, "lite0")


def test_multiclass_separable_predicts_and_sums_to_one():
    x, y = clusters(10, 4, seed=0)
    head = train_multiclass(x, y, 4)
    test_x, test_y = clusters(25, 4, seed=1)
    p = head.predict_proba(test_x)
    assert p.shape == (100, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(axis=1) == test_y).mean() == 1.0
    assert head.classification_type == MULTICLASS
    assert head.image_size == 224 and head.backbone == "lite0"


def test_two_class_multiclass_matches_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from loupe_model.head import DEFAULT_C, l2_normalize

    x, y = clusters(12, 2, seed=2)
    x = x + np.random.default_rng(3).normal(size=x.shape).astype(np.float32) * 4  # overlap
    head = train_multiclass(x, y, 2)
    reference = LogisticRegression(C=DEFAULT_C, max_iter=1000).fit(l2_normalize(x), y)
    np.testing.assert_allclose(head.predict_proba(x), reference.predict_proba(l2_normalize(x)), atol=1e-5)


def test_multilabel_sigmoids_learn_each_tag():
    rng = np.random.default_rng(4)
    n = 80
    labels = rng.integers(0, 2, size=(n, 3)).astype(np.float32)
    directions = np.random.default_rng(5).normal(size=(3, D)) * 3
    x = (labels @ directions + rng.normal(size=(n, D))).astype(np.float32)
    ids, names = tags(3)
    head = train_head(x[:60], labels[:60], True, 0, ids, names, "lite0")
    p = head.predict_proba(x[60:])
    assert head.classification_type == MULTILABEL
    assert ((p >= 0.5) == (labels[60:] > 0.5)).mean() >= 0.9
    assert not np.allclose(p.sum(axis=1), 1.0)


def test_bytes_round_trip_identical_probabilities():
    x, y = clusters(6, 3, seed=6)
    head = train_multiclass(x, y, 3)
    head.tag_names[1] = "ünïcode / tag"
    data = head.to_bytes()
    # An .npz is a zip of .npy files; none of them may need pickle to load.
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["bias.npy", "meta.npy", "weights.npy"]
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert npz["weights"].dtype == np.float32
    loaded = Head.from_bytes(data)
    np.testing.assert_array_equal(loaded.predict_proba(x), head.predict_proba(x))
    assert loaded.tag_ids == head.tag_ids and loaded.tag_names == head.tag_names
    assert (loaded.backbone, loaded.image_size, loaded.multilabel) == ("lite0", 224, False)


def test_from_bytes_rejects_garbage():
    with pytest.raises(ValueError):
        Head.from_bytes(b"definitely not a head")


def test_training_is_deterministic():
    x, y = clusters(8, 3, seed=7)
    a = train_multiclass(x, y, 3, seed=11)
    b = train_multiclass(x, y, 3, seed=11)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.bias, b.bias)


def test_tag_without_images_is_never_predicted():
    x, y = clusters(8, 2, seed=8)
    head = train_multiclass(x, y, 3)  # tag 2 has no training image
    p = head.predict_proba(x)
    assert p[:, 2].max() < 1e-6
    assert (p.argmax(axis=1) == y).all()


def test_multilabel_constant_tags():
    x, _ = clusters(5, 2, seed=9)
    labels = np.zeros((10, 2), dtype=np.float32)
    labels[:, 0] = 1  # on every image
    ids, names = tags(2)
    p = train_head(x, labels, True, 0, ids, names, "lite0").predict_proba(x)
    assert (p[:, 0] > 0.9).all() and (p[:, 1] < 0.1).all()


def test_shape_checks():
    x, y = clusters(4, 2, seed=10)
    ids, names = tags(2)
    with pytest.raises(ValueError):
        train_head(x, one_hot(y, 2)[:5], False, 0, ids, names, "lite0")
    with pytest.raises(ValueError):
        train_head(x, one_hot(y, 2), False, 0, ids[:1], names[:1], "lite0")
    with pytest.raises(KeyError):
        train_head(x, one_hot(y, 2), False, 0, ids, names, "no-such-backbone")


def test_head_refuses_embeddings_of_another_length():
    x, y = clusters(5, 3, seed=0)
    head = train_multiclass(x, y, 3)
    with pytest.raises(ValueError, match="embedding length"):
        head.predict_proba(np.zeros((1, D + 1), dtype=np.float32))


def test_logit_scale_sharpens_without_changing_the_argmax():
    x, y = clusters(6, 3, seed=1)
    ids, names = tags(3)
    plain = train_head(x, one_hot(y, 3), False, 0, ids, names, "lite0")
    sharp = train_head(x, one_hot(y, 3), False, 0, ids, names, "lite0", logit_scale=4.0)
    np.testing.assert_allclose(sharp.logits(x), 4.0 * plain.logits(x), rtol=1e-5, atol=1e-5)
    assert (sharp.predict_proba(x).argmax(1) == plain.predict_proba(x).argmax(1)).all()
    assert Head.from_bytes(sharp.to_bytes()).predict_proba(x) == pytest.approx(sharp.predict_proba(x))


def test_fit_quick_is_deterministic_and_handles_5_beside_300():
    from loupe_model.train import fit_quick

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(2, D)) * 3
    x = np.concatenate([centres[0] + rng.normal(size=(300, D)), centres[1] + rng.normal(size=(5, D))])
    y = np.r_[np.zeros(300, int), np.ones(5, int)]
    ids, names = tags(2)
    head, ev = fit_quick(x, one_hot(y, 2), False, 3, ids, names, "lite0")
    again, ev2 = fit_quick(x, one_hot(y, 2), False, 3, ids, names, "lite0")
    assert head.to_bytes() == again.to_bytes() and ev.to_json() == ev2.to_json()
    assert ev.num_folds == 5  # every fold holds one of the 5 rare images
    held_out = ev.probabilities.argmax(1)
    assert (held_out[y == 1] == 1).mean() >= 0.6 and (held_out[y == 0] == 0).mean() >= 0.95
    test = centres[1] + np.random.default_rng(8).normal(size=(20, D))
    assert (head.predict_proba(test).argmax(1) == 1).mean() >= 0.8


def test_fit_quick_multilabel():
    from loupe_model.train import fit_quick

    x, y = clusters(10, 3, seed=2)
    labels = one_hot(y, 3)
    labels[:, 2] = (y != 1).astype(np.float32)  # tag 2 on clusters 0 and 2
    ids, names = tags(3)
    head, ev = fit_quick(x, labels, True, 0, ids, names, "lite0")
    assert head.multilabel and ev.multilabel and ev.logit_scale > 0
    probs = head.predict_proba(x)
    assert ((probs >= 0.5) == (labels > 0.5)).mean() >= 0.95
