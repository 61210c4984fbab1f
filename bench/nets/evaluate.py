"""Supernet evaluation on held-out batches, the primitive every criterion builds on.

The BatchNorm mode is explicit: ``"eval"`` uses running statistics; ``"train"`` uses batch
statistics and, with running-stat tracking on, updates the running statistics as a side
effect (what DARTS-PT does on purpose, docs/criteria.md §9.2).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import UserError

BN_MODES = ("train", "eval")


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # top-1 in %
    loss: float      # mean cross-entropy
    images: int


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
    return _evaluations(net, batches, mode, weights, compute_mask, copies=1)[0]


def evaluate_each(net, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], mode: str,
                  weights: Sequence[torch.Tensor], compute_masks: Sequence[np.ndarray | None],
                  together: int = 1) -> list[Evaluation]:
    """``evaluate`` of each mixing weights ``weights[k]`` (with ``compute_masks[k]``) on the same batches.

    ``together`` > 1 evaluates that many in one forward where the supernet takes stacked
    weights (``Supernet._stacked_logits``: the batch repeated, BatchNorm statistics per copy),
    so each result equals its own ``evaluate`` up to float rounding.  What differs is the
    side effect of ``mode="train"``: the running statistics take their updates in another
    order (per batch, then per weights, instead of the reverse), and an op skipped by one
    compute mask but computed for the others also updates its BN with that copy (as the
    official DARTS-PT code, which computes masked ops).  1 = one ``evaluate`` each."""
    if together < 1:
        raise UserError(f"masks evaluated together must be at least 1, got {together}")
    if together == 1 or not getattr(net, "stacks_weights", False) or net.implementation != "fast":
        return [evaluate(net, batches, mode, w, m) for w, m in zip(weights, compute_masks)]
    results = []
    for start in range(0, len(weights), together):
        stack = torch.stack(list(weights[start:start + together]))
        masks = compute_masks[start:start + together]
        mask = (None if any(m is None for m in masks)
                else np.logical_or.reduce([np.asarray(m, bool) for m in masks]))
        results += _evaluations(net, batches, mode, stack, mask, copies=len(stack))
    return results


def _evaluations(net, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], mode: str,
                 weights: torch.Tensor | None, compute_mask: np.ndarray | None,
                 copies: int) -> list[Evaluation]:
    """One evaluation per copy: ``copies`` = 1 is a plain forward per batch; more is the batch
    repeated with a stack of ``copies`` mixing weights (``Supernet._stacked_logits``).  Each
    copy's loss is summed per batch as a forward of it alone would be."""
    correct = torch.zeros(copies, dtype=torch.float64)
    total_loss = torch.zeros(copies, dtype=torch.float64)
    images = 0
    with torch.no_grad(), bn_mode(net, mode):
        for x, y in batches:
            inputs = x if copies == 1 else x.repeat(copies, 1, 1, 1)
            logits = net(inputs, weights=weights, compute_mask=compute_mask).view(copies, len(y), -1)
            correct += (logits.argmax(2) == y).sum(1).double().cpu()
            total_loss += torch.stack([F.cross_entropy(part, y, reduction="sum")
                                       for part in logits]).double().cpu()
            images += len(y)
    return [Evaluation(100.0 * float(c) / images, float(s) / images, images)
            for c, s in zip(correct, total_loss)]


def masked_weights(weights: torch.Tensor, edge: int, op: int) -> tuple[torch.Tensor, np.ndarray]:
    """Mixing weights with op ``op`` of ``edge`` set to 0 (no renormalisation) and the compute
    mask that skips it."""
    w = weights.clone()
    w[edge, op] = 0.0
    mask = np.ones((6, 5), dtype=bool)
    mask[edge, op] = False
    return w, mask


def edge_drops(net, batches, edge: int, crit: str, mode: str,
               base: Evaluation | None = None, together: int = 1) -> tuple[np.ndarray, float]:
    """Drop of each available op on ``edge`` on fixed ``batches`` (DARTS-PT's mask test on fixed
    batches; ``ostr variant=exact``), and the unmasked accuracy.  On fixed batches masking 'none'
    (zero output, no renormalisation) changes no logit, so its drop is exactly 0 and is not
    evaluated."""
    weights = net.arch_weights().detach()
    if base is None:
        base = evaluate(net, batches, mode, weights)
    drops = np.full(5, np.nan)
    if bool(net.op_mask[edge, 0]):
        drops[0] = 0.0
    ops = [op for op in range(1, 5) if bool(net.op_mask[edge, op])]
    masked = [masked_weights(weights, edge, op) for op in ops]
    for op, result in zip(ops, evaluate_each(net, batches, mode, [w for w, _ in masked],
                                             [m for _, m in masked], together)):
        drops[op] = base.accuracy - result.accuracy if crit == "acc" else result.loss - base.loss
    return drops, base.accuracy
