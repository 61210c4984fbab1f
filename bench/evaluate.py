"""Supernet evaluation on held-out batches, the primitive every criterion builds on.

The BatchNorm mode is explicit: ``"eval"`` uses running statistics; ``"train"`` uses batch
statistics and, with running-stat tracking on, updates the running statistics as a side
effect (what DARTS-PT does on purpose, criteria-spec §3.2).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import DeviceDataset, normalize
from bench.errors import UserError

BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # top-1 in %
    loss: float      # mean cross-entropy
    images: int


def fixed_batches(data: DeviceDataset, size: int | None, batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``size`` images (all if None) of ``data``, normalised, in fixed batches.

    Built once and reused, so every masked evaluation of a criterion sees the same images."""
    n = len(data) if size is None else min(int(size), len(data))
    if n <= 0:
        raise UserError(f"validation subset size must be positive, got {size}")
    return [(normalize(data.images[s:s + batch_size]), data.labels[s:s + batch_size]) for s in range(0, n, batch_size)]


@contextmanager
def bn_mode(net: torch.nn.Module, mode: str) -> Iterator[None]:
    if mode not in BN_MODES:
        raise UserError(f"BN mode must be one of {BN_MODES}, got {mode!r}")
    was_training = net.training
    net.train(mode == "train")
    try:
        yield
    finally:
        net.train(was_training)


def evaluate(net, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], mode: str = "eval",
             weights: torch.Tensor | None = None, compute_mask: np.ndarray | None = None) -> Evaluation:
    """Accuracy and loss of the supernet (optionally with overridden mixing weights)."""
    correct = torch.zeros((), dtype=torch.float64)
    total_loss = torch.zeros((), dtype=torch.float64)
    images = 0
    with torch.no_grad(), bn_mode(net, mode):
        for x, y in batches:
            logits = net(x, weights=weights, compute_mask=compute_mask)
            correct = correct + (logits.argmax(1) == y).sum().double().cpu()
            total_loss = total_loss + F.cross_entropy(logits, y, reduction="sum").double().cpu()
            images += len(y)
    return Evaluation(100.0 * float(correct) / images, float(total_loss) / images, images)
