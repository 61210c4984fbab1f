"""Selection criteria: each turns a trained supernet into an op-score matrix (6 x 5).

One small module per criterion, registered by name with ``@register`` (the pattern of
the zero-cost-NAS measures registry).  A criterion is a function
``(supernet, context) -> np.ndarray`` where ``context`` gives access to data and options;
higher score = more important op, NaN = unavailable.  The derived cell is
``bench.space.select_cell(scores, allow_none)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from bench.errors import UserError


@dataclass
class Context:
    """What a criterion may use besides the supernet: data access, a seed and options."""

    data: Any = None
    seed: int = 0
    options: dict = field(default_factory=dict)


class Criterion(Protocol):
    def __call__(self, supernet, context: Context) -> np.ndarray: ...


_REGISTRY: dict[str, Criterion] = {}


def register(name: str) -> Callable[[Criterion], Criterion]:
    def wrap(fn: Criterion) -> Criterion:
        if name in _REGISTRY:
            raise ValueError(f"criterion {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn
    return wrap


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> Criterion:
    if name not in _REGISTRY:
        raise UserError(f"Unknown criterion {name!r}; available: {', '.join(names())}")
    return _REGISTRY[name]


def compute(name: str, supernet, context: Context | None = None) -> np.ndarray:
    scores = np.asarray(get(name)(supernet, context or Context()), dtype=np.float64)
    if scores.shape != (6, 5):
        raise RuntimeError(f"criterion {name!r} returned shape {scores.shape}, expected (6, 5)")
    return scores


from criteria import magnitude  # noqa: E402,F401  (registers itself)
