"""An EoiNAS-style indicator on a checkpoint [harness invention] (after Zhou, Xie, Kung; arXiv 1911.10511).

EoiNAS computes its indicator *during training* (the ``eoinas`` search method,
``bench.search.methods``); the official code never evaluates one on a finished supernet.  This
criterion is the harness's transfer of the idea to a checkpoint, not a published procedure:

I_{e,o} = softmax(alpha_e)_o + lambda * A_{e,o},  lambda = 0.5,

A_{e,o} = mean validation accuracy (a fraction in [0, 1]) of sampled sub-networks with op o on
edge e.  ``samples`` cells are drawn from the categorical softmax(alpha) (seeded; the op a
Gumbel-softmax sample favours is distributed so at any temperature), each evaluated inside the
supernet (every edge fixed to its op, no retraining) on one fixed validation batch (cycling
through the batches), and their accuracies averaged per (edge, op).  An available op that no
draw picked is not left at A = 0 (which would rank it by softmax(alpha) alone, below every
sampled op): it gets ``min_samples`` draws of its own, the op forced on its edge and the other
edges drawn from softmax(alpha), which sample exactly the conditional distribution its A
estimates; a forced draw counts for its forced (edge, op) only.  The record holds both counts.
BatchNorm runs in train mode by default (batch statistics: the supernet's running statistics
belong to the mixed network, not to one path).  With lambda = 0 the indicator is softmax(alpha)
and selects what ``magnitude`` selects.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.errors import UserError
from bench.nets.evaluate import BN_MODES, evaluate
from criteria.registry import Context, register, unavailable


def sampling_probabilities(supernet) -> np.ndarray:
    """softmax(alpha) over the available ops (6 x 5, float64); unavailable ops 0."""
    with torch.no_grad():
        logits = supernet.alpha.detach().double().masked_fill(~supernet.op_mask, float("-inf"))
        return torch.softmax(logits, dim=-1).cpu().numpy()


@register("eoinas", defaults={"lam": 0.5, "samples": 64, "min_samples": 1, "bn_mode": "train"},
          limits={"lam": (0.0, None), "samples": (1, None), "min_samples": (0, None), "bn_mode": BN_MODES})
def eoinas(supernet, context: Context) -> np.ndarray:
    lam, samples, least, mode = (context.options[k] for k in ("lam", "samples", "min_samples", "bn_mode"))
    if samples < 0 or least < 0:
        raise UserError(f"eoinas samples and min_samples must be >= 0, got {samples} and {least}")
    if mode not in BN_MODES:
        raise UserError(f"eoinas bn_mode must be one of {', '.join(BN_MODES)}, got {mode!r}")
    probs = sampling_probabilities(supernet)
    available = ~unavailable(supernet)
    acc_sum = np.zeros((6, 5))
    drawn = np.zeros((6, 5), dtype=np.int64)
    forced = np.zeros((6, 5), dtype=np.int64)
    if lam != 0:
        batches = context.valid_batches()
        rng = np.random.default_rng(context.seed)
        saved = list(supernet.fixed)
        evaluations = 0

        def accuracy(cell: list[int]) -> float:
            nonlocal evaluations
            supernet.fixed = cell
            evaluations += 1
            return evaluate(supernet, [batches[(evaluations - 1) % len(batches)]], mode).accuracy / 100.0

        def draw() -> list[int]:
            return [int(rng.choice(5, p=probs[e])) for e in range(6)]

        try:
            for _ in range(samples):
                cell = draw()
                acc_sum[np.arange(6), cell] += accuracy(cell)
                drawn[np.arange(6), cell] += 1
            for e, o in zip(*np.nonzero(available)):
                while drawn[e, o] + forced[e, o] < least:
                    cell = draw()
                    cell[e] = int(o)
                    acc_sum[e, o] += accuracy(cell)
                    forced[e, o] += 1
        finally:
            supernet.fixed = saved
    counts = drawn + forced
    term = np.divide(acc_sum, counts, out=np.zeros((6, 5)), where=counts > 0)
    scores = probs + lam * term
    scores[~available] = np.nan
    context.info.update({"samples": samples, "min_samples": least, "lam": lam, "bn_mode": mode,
                         "sample_counts": drawn.tolist(), "forced_counts": forced.tolist(),
                         "accuracy_term": term.tolist()})
    return scores
