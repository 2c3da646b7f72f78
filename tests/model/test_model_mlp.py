"""loupe_model.mlp: the Advanced head (one hidden layer), its format and its honest evaluation."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from loupe_model.evaluate import cross_validate
from loupe_model.head import LINEAR, MLP, Head, fit_layers, train_head
from loupe_model.mlp import fit_mlp
from loupe_model.train import fit_quick

pytestmark = pytest.mark.model

D = 48


def clusters(n_per_class: int, n_classes: int, seed: int, spread: float = 1.0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(n_classes, D)) * 2
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, D)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(n_classes), n_per_class)


def tags(t: int):
    return [f"id-{i}" for i in range(t)], [f"tag {i}" for i in range(t)]


def mlp_head(x, labels, multilabel=False, seed=0, logit_scale=1.0) -> Head:
    ids, names = tags(labels.shape[1])
    return train_head(x, labels, multilabel, seed, ids, names, "lite0", logit_scale=logit_scale, kind=MLP)


def test_hidden_layer_head_learns_what_a_linear_head_cannot():
    # XOR of two directions: no linear head separates it, one hidden layer does.
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 1.0], size=(240, 2))
    x = np.concatenate([signs * 3 + rng.normal(scale=0.5, size=(240, 2)), np.full((240, 1), 3.0)], axis=1)
    y = (signs[:, 0] * signs[:, 1] > 0).astype(int)
    labels = np.eye(2, dtype=np.float32)[y]
    train, test = slice(0, 160), slice(160, None)
    ids, names = tags(2)
    linear = train_head(x[train], labels[train], False, 0, ids, names, "lite0")
    hidden = mlp_head(x[train], labels[train])
    assert hidden.kind == MLP and linear.kind == LINEAR
    assert (hidden.predict_proba(x[test]).argmax(1) == y[test]).mean() >= 0.95
    assert (linear.predict_proba(x[test]).argmax(1) == y[test]).mean() <= 0.75


def test_multiclass_clusters_and_probabilities():
    x, y = clusters(12, 4, seed=1)
    head = mlp_head(x, np.eye(4, dtype=np.float32)[y])
    tx, ty = clusters(20, 4, seed=2)
    p = head.predict_proba(tx)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p.argmax(1) == ty).mean() >= 0.95
    assert head.hidden_weights.shape == (1024, D) and head.weights.shape == (4, 1024)


def test_format_version_2_round_trips_and_linear_heads_stay_version_1():
    x, y = clusters(6, 3, seed=3)
    head = mlp_head(x, np.eye(3, dtype=np.float32)[y], logit_scale=2.5)
    data = head.to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == ["bias.npy", "hidden_bias.npy", "hidden_weights.npy",
                                        "meta.npy", "weights.npy"]
    loaded = Head.from_bytes(data)
    assert loaded.kind == MLP
    np.testing.assert_array_equal(loaded.predict_proba(x), head.predict_proba(x))
    ids, names = tags(3)
    linear = train_head(x, np.eye(3, dtype=np.float32)[y], False, 0, ids, names, "lite0")
    with np.load(io.BytesIO(linear.to_bytes()), allow_pickle=False) as npz:
        assert b'"version": 1' in bytes(npz["meta"])


def test_from_bytes_rejects_a_hidden_layer_that_does_not_fit():
    x, y = clusters(4, 2, seed=4)
    head = mlp_head(x, np.eye(2, dtype=np.float32)[y])
    head.hidden_bias = head.hidden_bias[:-1]
    with pytest.raises(ValueError, match="hidden layer"):
        Head.from_bytes(head.to_bytes())


def test_mixed_precision_path_learns_the_same_classes():
    # The bf16 autocast path that CUDA takes by default, run on the CPU (CI has no GPU): the same
    # predictions within noise, not the same bits; off by default on the CPU.
    x, y = clusters(12, 4, seed=3, spread=1.5)
    labels = np.eye(4, dtype=np.float32)[y]
    tx, ty = clusters(25, 4, seed=4, spread=1.5)
    fp32 = fit_mlp(x, labels, False, seed=0, steps=100, on="cpu", mixed_precision=False)
    bf16 = fit_mlp(x, labels, False, seed=0, steps=100, on="cpu", mixed_precision=True)
    default = fit_mlp(x, labels, False, seed=0, steps=100, on="cpu")
    assert np.array_equal(default.hidden_weights, fp32.hidden_weights)
    assert not np.array_equal(bf16.hidden_weights, fp32.hidden_weights)
    assert bf16.hidden_weights.dtype == np.float32
    p32, p16 = fp32.logits(tx).argmax(1), bf16.logits(tx).argmax(1)
    assert (p32 == ty).mean() >= 0.9 and (p16 == ty).mean() >= 0.9
    assert (p32 == p16).mean() >= 0.95


def test_same_inputs_and_seed_give_the_same_head_and_another_seed_does_not():
    x, y = clusters(8, 3, seed=5, spread=2.0)
    labels = np.eye(3, dtype=np.float32)[y]
    a, b, c = mlp_head(x, labels, seed=7), mlp_head(x, labels, seed=7), mlp_head(x, labels, seed=8)
    assert a.to_bytes() == b.to_bytes()
    assert not np.array_equal(a.hidden_weights, c.hidden_weights)


def test_tag_without_images_is_never_predicted_and_one_tag_is_constant():
    x, y = clusters(8, 2, seed=6)
    head = mlp_head(x, np.eye(3, dtype=np.float32)[y])  # tag 2 has no image
    p = head.predict_proba(x)
    assert p[:, 2].max() < 1e-6 and (p.argmax(1) == y).all()
    single = fit_mlp(x, np.eye(2, dtype=np.float32)[np.zeros(len(x), int)], False, 0)
    logits = single.logits(x)
    assert (logits.argmax(1) == 0).all() and np.ptp(logits, axis=0).max() == 0


def test_multilabel_learns_each_tag_and_keeps_constant_tags_constant():
    rng = np.random.default_rng(7)
    n = 90
    labels = rng.integers(0, 2, size=(n, 4)).astype(np.float32)
    labels[:, 3] = 1.0  # on every image
    directions = np.random.default_rng(8).normal(size=(4, D)) * 3
    x = (labels[:, :3] @ directions[:3] + rng.normal(size=(n, D))).astype(np.float32)
    head = mlp_head(x[:60], labels[:60], multilabel=True)
    p = head.predict_proba(x[60:])
    assert ((p[:, :3] >= 0.5) == (labels[60:, :3] > 0.5)).mean() >= 0.9
    assert (p[:, 3] > 0.9).all() and np.ptp(p[:, 3]) < 1e-9


def test_fit_layers_rejects_an_unknown_kind():
    x, y = clusters(3, 2, seed=9)
    with pytest.raises(ValueError, match="head kind"):
        fit_layers(x, np.eye(2)[y], False, 0, kind="forest")


def test_many_images_train_in_minibatches():
    x, y = clusters(300, 2, seed=10, spread=1.5)  # 600 images > one 512-image batch
    layers = fit_mlp(x, np.eye(2)[y], False, 0, steps=60)
    tx, ty = clusters(50, 2, seed=11, spread=1.5)
    assert (layers.logits(tx).argmax(1) == ty).mean() >= 0.95


def test_fit_quick_with_the_hidden_layer_is_held_out_and_calibrated():
    x, y = clusters(10, 3, seed=12, spread=2.5)
    ids, names = tags(3)
    head, ev = fit_quick(x, np.eye(3, dtype=np.float32)[y], False, 1, ids, names, "lite0", kind=MLP)
    assert head.kind == MLP and ev.num_folds == 5
    np.testing.assert_allclose(head.logits(x) / ev.logit_scale,
                               fit_layers(x, np.eye(3)[y], False, 1, kind=MLP).logits(x), rtol=1e-4, atol=1e-4)
    held_out = (ev.probabilities.argmax(1) == y).mean()
    seen = (head.predict_proba(x).argmax(1) == y).mean()
    assert 0.5 <= held_out <= seen


def test_advanced_uses_the_hidden_layer_only_with_enough_images_per_tag():
    from loupe_model.train import MLP_MIN_IMAGES_PER_TAG, advanced_head_kind

    enough = np.eye(3)[np.repeat(np.arange(3), MLP_MIN_IMAGES_PER_TAG)]
    assert advanced_head_kind(enough) == (MLP, "")
    with_empty_tag = np.concatenate([enough, np.zeros((len(enough), 1))], axis=1)
    assert advanced_head_kind(with_empty_tag)[0] == MLP  # a tag without images does not count
    few = enough[1:]
    kind, why = advanced_head_kind(few)
    assert kind == LINEAR and f"{MLP_MIN_IMAGES_PER_TAG - 1} images" in why


def test_cross_validation_of_the_hidden_layer_head_uses_fewer_folds():
    features = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    two = np.eye(2)[[0, 1] * 15]
    assert cross_validate(features, two, False, seed=0, kind=MLP).num_folds == 5
