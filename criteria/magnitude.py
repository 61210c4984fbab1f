"""DARTS magnitude selection (Liu et al., ICLR 2019; NB201 rule, docs/criteria.md §9.1).

Score = log softmax(alpha) over the available ops: the per-edge argmax equals argmax alpha
(= argmax softmax(alpha)), and the additive architecture score is the cell's
log-probability under the factorised categorical (docs/criteria.md §6).  'none' may be selected.
Pruned ops score NaN.
"""
from __future__ import annotations

import numpy as np
import torch

from criteria.registry import Context, register, unavailable


@register("magnitude", needs_data=False)
def magnitude(supernet, context: Context) -> np.ndarray:
    with torch.no_grad():
        logits = supernet.alpha.detach().double().masked_fill(~supernet.op_mask, float("-inf"))
        scores = torch.log_softmax(logits, dim=-1).cpu().numpy()
    scores[unavailable(supernet)] = np.nan
    return scores
