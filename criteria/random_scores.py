"""Uniformly random op scores (seeded): the floor every report shows."""
from __future__ import annotations

import numpy as np

from criteria.registry import Context, register, unavailable


@register("random", needs_data=False)
def random_scores(supernet, context: Context) -> np.ndarray:
    scores = np.random.default_rng(context.seed).random((6, 5))
    scores[unavailable(supernet)] = np.nan
    return scores
