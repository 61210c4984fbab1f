"""Continuous relaxations: alpha (6 x 5) and a mask of available ops -> mixing weights.

``softmax`` is DARTS's (Liu et al., ICLR 2019, Eq. 2): masked ops get weight 0 and the
softmax renormalises over the rest.  Later methods register their own (unnormalised
gates for NAP, Gumbel-softmax for EoiNAS, temperature softmax for EnTranNAS).
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch


class Relaxation(Protocol):
    name: str

    def __call__(self, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


_REGISTRY: dict[str, Callable[[], Relaxation]] = {}


def register(name: str):
    def wrap(factory):
        _REGISTRY[name] = factory
        return factory
    return wrap


def get_relaxation(name: str) -> Relaxation:
    if name not in _REGISTRY:
        from bench.errors import UserError

        raise UserError(f"Unknown relaxation {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


@register("softmax")
class Softmax:
    """w[e] = softmax over the available ops of alpha[e] / temperature."""

    name = "softmax"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def __call__(self, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = alpha / self.temperature if self.temperature != 1.0 else alpha
        if bool(mask.all()):
            return torch.softmax(logits, dim=-1)
        return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
