"""The criteria registry: ``register``, ``Context``, ``compute``.

Each criterion turns a trained supernet into an op-score matrix (6 x 5).  One small module per
criterion in ``criteria/`` registers itself by name with ``@register`` (the pattern of the
zero-cost-NAS measures registry); the package ``criteria`` imports them all.  A criterion is a
function ``(supernet, context) -> np.ndarray``: higher score = more important op, NaN =
unavailable (pruned).  The derived cell is ``bench.nb201.space.select_cell(scores, allow_none)``.
A criterion declares its options with defaults; ``resolve_options`` validates them.  It may
modify the supernet it is given (``compute`` hands it a copy) and may put what it measured
besides the scores into ``context.info``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from bench.data import fixed_batches
from bench.errors import UserError


@dataclass
class Context:
    """What a criterion may use besides the supernet."""

    data: Any = None                 # bench.data.SearchData: weight half, alpha ("validation") half
    seed: int = 0
    options: dict = field(default_factory=dict)
    valid_size: int | None = None    # images of the alpha half used per evaluation (None = all)
    batch_size: int = 256
    search_config: Any = None        # the run's SearchConfig (for criteria that fine-tune)
    checkpoint: dict | None = None   # the loaded checkpoint (optimiser states), likewise
    info: dict = field(default_factory=dict)
    _valid: list | None = None

    def valid_batches(self) -> list:
        """The fixed validation batches (the first ``valid_size`` images of the alpha half)."""
        if self._valid is None:
            if self.data is None:
                raise UserError("this criterion needs validation data; none was given")
            self._valid = fixed_batches(self.data.alpha, self.valid_size, self.batch_size)
        return self._valid


class Criterion(Protocol):
    def __call__(self, supernet, context: Context) -> np.ndarray: ...


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Criterion
    defaults: dict
    needs_data: bool
    limits: dict = field(default_factory=dict)


_REGISTRY: dict[str, Entry] = {}


def register(name: str, defaults: dict | None = None, needs_data: bool = True,
             limits: dict | None = None) -> Callable[[Criterion], Criterion]:
    """Register ``fn`` as criterion ``name``.  ``limits`` per option: a tuple of strings (the
    allowed values) or a ``range(low, high)``-like pair ``(low, high)`` of numbers (``high``
    None: unbounded), checked by ``resolve_options`` before any work."""
    def wrap(fn: Criterion) -> Criterion:
        if name in _REGISTRY:
            raise ValueError(f"criterion {name!r} registered twice")
        _REGISTRY[name] = Entry(name, fn, dict(defaults or {}), needs_data, dict(limits or {}))
        return fn
    return wrap


def _check_limit(name: str, key: str, value, limit) -> None:
    if all(isinstance(v, str) for v in limit):
        if value not in limit:
            raise UserError(f"Option {name}.{key}={value!r} must be one of {', '.join(limit)}")
        return
    low, high = limit
    if not np.isfinite(value) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise UserError(f"Option {name}.{key}={value!r} must be {bound}")


def names() -> list[str]:
    return sorted(_REGISTRY)


def entry(name: str) -> Entry:
    if name not in _REGISTRY:
        raise UserError(f"Unknown criterion {name!r}; available: {', '.join(names())}")
    return _REGISTRY[name]


def resolve_options(name: str, given: dict | None) -> dict:
    """The criterion's defaults updated by ``given``; unknown keys and wrong types are errors."""
    defaults = entry(name).defaults
    options = dict(defaults)
    for key, value in (given or {}).items():
        if key not in defaults:
            raise UserError(f"Criterion {name!r} has no option {key!r}; its options are: "
                            f"{', '.join(f'{k}={v}' for k, v in defaults.items()) or 'none'}")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if str(value).lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value = str(value).lower() in ("true", "1")
            elif isinstance(default, int):
                value = int(value)
            elif isinstance(default, float):
                value = float(value)
            else:
                value = str(value)
        except ValueError:
            raise UserError(f"Option {name}.{key}={value!r} must be of type "
                            f"{type(default).__name__}") from None
        options[key] = value
    for key, limit in entry(name).limits.items():
        _check_limit(name, key, options[key], limit)
    return options


def compute(name: str, supernet, context: Context | None = None, owned: bool = False) -> np.ndarray:
    """Scores of criterion ``name``; ``context.options`` is resolved against its defaults.

    A criterion may change the network it scores (train-mode BatchNorm statistics, masks,
    fine-tuning), so it gets its own copy of ``supernet`` unless the caller hands the network
    over (``owned=True``: a network loaded for this one call)."""
    context = context or Context()
    context.options = resolve_options(name, context.options)
    if not owned:
        supernet = copy.deepcopy(supernet)
    scores = np.asarray(entry(name).fn(supernet, context), dtype=np.float64)
    if scores.shape != (6, 5):
        raise RuntimeError(f"criterion {name!r} returned shape {scores.shape}, expected (6, 5)")
    return scores


def unavailable(supernet) -> np.ndarray:
    """Boolean (6 x 5): ops pruned from the supernet (their score is NaN)."""
    return ~supernet.op_mask.cpu().numpy()
