"""The Advanced head: one hidden ReLU layer over the frozen embeddings, trained with PyTorch.

On the design draws of the few-shot protocol (Fashion-MNIST, 10 tags, 30 images each, 3 draws,
`python bench/heads.py heads`) it beat the calibrated logistic head by about half a point
(0.850 against 0.845) at about 15 s per fit on 2 CPU cores; partial fine-tuning, other
backbones, larger inputs, extra views and kernel SVMs did not (see docs/design-notes.md).

Recipe: standardise the L2-normalised embeddings (statistics of the training images), dropout
0.5 -> Linear(D, 1024) -> ReLU -> dropout 0.5 -> Linear(1024, T), AdamW (lr 1e-3, weight decay
1e-2) with a cosine schedule over 300 steps, label smoothing 0.1 (softmax) or smoothed targets
(sigmoid). Steps are full-batch up to `BATCH` images and minibatches above that, so the cost of
a fit is bounded whatever the project's size. The standardisation is folded into the hidden
layer, so the result is a `head.Layers` that numpy applies without torch.

CUDA is used when present (`device()`), with bf16 mixed precision (autocast: the matrix
products in bf16, the loss, the optimiser state and the weights in fp32); results there match
the CPU ones within noise, not bit for bit.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .head import Layers, constant_logits, l2_normalize

HIDDEN = 1024
STEPS = 300
BATCH = 512
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-2
DROPOUT = 0.5
LABEL_SMOOTHING = 0.1
# Floor of a dimension's standard deviation, relative to the mean one: a dimension (almost)
# constant over a few training images must not blow up a new image's hidden activations.
_SD_FLOOR = 0.1


def device() -> str:
    """"cuda" when a GPU is usable, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def fit_mlp(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    hidden: int = HIDDEN,
    steps: int = STEPS,
    on: str | None = None,
    mixed_precision: bool | None = None,
) -> Layers:
    """Trains the hidden-layer head.

    Tags that cannot be learnt get constant logits, as in `head.fit_linear`
    (`head.constant_logits`).

    Args:
        features: raw embeddings (N, D).
        labels: (N, T) 0/1; multiclass rows have exactly one 1 (argmax is used).
        multilabel: per-tag sigmoid (else softmax).
        seed: initialisation, dropout and minibatch seed (same inputs and seed, same device
            and thread count: the same head).
        hidden: hidden units.
        steps: optimiser steps.
        on: torch device; default `device()`.
        mixed_precision: bf16 autocast for the forward pass; default: on CUDA only (on CPU
            it is slower than fp32 on most processors, and the CPU results stay bit-stable).

    Returns:
        `Layers` with float32 arrays: hidden (hidden, D), output (T, hidden).
    """
    import torch

    x = l2_normalize(features)
    labels = np.asarray(labels, dtype=np.float64)
    n, t = labels.shape
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.maximum(sd, _SD_FLOOR * max(float(sd.mean()), 1e-12))
    z = (x - mean) / sd

    out_weights = np.zeros((t, hidden), dtype=np.float64)
    out_bias, learn = constant_logits(labels, multilabel)
    if multilabel:
        targets = labels[:, learn] * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / 2.0
    else:
        targets = np.searchsorted(learn, labels.argmax(axis=1))

    dim = x.shape[1]
    if len(learn) == 0:
        # Nothing to separate: a zero hidden layer and constant logits.
        return Layers(out_weights.astype(np.float32), out_bias.astype(np.float32),
                      np.zeros((hidden, dim), dtype=np.float32), np.zeros(hidden, dtype=np.float32))

    on = on or device()
    if mixed_precision is None:
        mixed_precision = on.startswith("cuda")

    def autocast():
        if mixed_precision:
            return torch.autocast(device_type=torch.device(on).type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if on.startswith("cuda") else []):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Dropout(DROPOUT),
            torch.nn.Linear(dim, hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(DROPOUT),
            torch.nn.Linear(hidden, len(learn)),
        ).to(on)
        inputs = torch.tensor(z, dtype=torch.float32, device=on)
        if multilabel:
            target = torch.tensor(targets, dtype=torch.float32, device=on)
            loss_fn = torch.nn.BCEWithLogitsLoss()
        else:
            target = torch.tensor(targets, dtype=torch.int64, device=on)
            loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
        optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
        order = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(steps):
            if n > BATCH:
                rows = torch.randperm(n, generator=order)[:BATCH].to(on)
                batch, batch_target = inputs[rows], target[rows]
            else:
                batch, batch_target = inputs, target
            optimiser.zero_grad(set_to_none=True)
            with autocast():
                logits = net(batch)
            loss_fn(logits.float(), batch_target).backward()
            optimiser.step()
            schedule.step()
        first, last = net[1], net[4]
        w1 = first.weight.detach().double().cpu().numpy()
        b1 = first.bias.detach().double().cpu().numpy()
        w2 = last.weight.detach().double().cpu().numpy()
        b2 = last.bias.detach().double().cpu().numpy()

    # relu(W1 (x - mean) / sd + b1) = relu((W1 / sd) x + (b1 - (W1 / sd) mean))
    hidden_weights = w1 / sd
    hidden_bias = b1 - hidden_weights @ mean
    out_weights[learn] = w2
    out_bias[learn] = b2
    return Layers(out_weights.astype(np.float32), out_bias.astype(np.float32),
                  hidden_weights.astype(np.float32), hidden_bias.astype(np.float32))
