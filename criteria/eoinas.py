"""The EoiNAS importance indicator on a checkpoint (Zhou, Xie, Kung; arXiv 1911.10511; spec §5).

I_{e,o} = softmax(alpha_e)_o + lambda * A_{e,o},  lambda = 0.5 (``eoi_paper``, the default):
A_{e,o} = mean validation accuracy (a fraction in [0, 1]) of sampled sub-networks that
contain op o on edge e.  On a checkpoint the accuracy term is estimated by sampling
``samples`` cells from the categorical softmax(alpha) (seeded), evaluating each sampled
cell inside the supernet (every edge fixed to the sampled op, no retraining) on one fixed
validation batch (cycling through the batches), and averaging per (edge, op).  An op never
sampled gets A = 0 (its count is recorded).  BatchNorm runs in train mode by default
(batch statistics: the supernet's running statistics belong to the mixed network, not to
a single path).  With lambda = 0 the indicator is softmax(alpha) and selects what
``magnitude`` selects.  The training-time indicator with gradual pruning is the
``eoinas`` search method, not this criterion.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.evaluate import evaluate
from criteria import Context, register, unavailable


@register("eoinas", defaults={"lam": 0.5, "samples": 64, "bn_mode": "train"})
def eoinas(supernet, context: Context) -> np.ndarray:
    lam, samples, mode = context.options["lam"], context.options["samples"], context.options["bn_mode"]
    with torch.no_grad():
        probs = supernet.relaxation(supernet.alpha, supernet.op_mask).double().cpu().numpy()
    acc_sum = np.zeros((6, 5))
    counts = np.zeros((6, 5), dtype=np.int64)
    if lam != 0:
        batches = context.valid_batches()
        rng = np.random.default_rng(context.seed)
        saved = list(supernet.fixed)
        try:
            for k in range(samples):
                cell = [int(rng.choice(5, p=probs[e] / probs[e].sum())) for e in range(6)]
                supernet.fixed = cell
                accuracy = evaluate(supernet, [batches[k % len(batches)]], mode).accuracy / 100.0
                acc_sum[np.arange(6), cell] += accuracy
                counts[np.arange(6), cell] += 1
        finally:
            supernet.fixed = saved
    term = np.divide(acc_sum, counts, out=np.zeros((6, 5)), where=counts > 0)
    scores = probs + lam * term
    scores[unavailable(supernet)] = np.nan
    context.info.update({"samples": samples, "lam": lam, "sample_counts": counts.tolist(), "bn_mode": mode})
    return scores
