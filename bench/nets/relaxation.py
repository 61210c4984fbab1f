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


class _Gate:
    """Unnormalised relaxation (NAP, docs/criteria.md §8.3): w[e, o] = g(alpha[e, o]) for available
    ops, 0 for masked ones; no coupling between ops through a shared denominator."""

    name = "gate"
    fn = staticmethod(torch.sigmoid)

    def __call__(self, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fn(alpha) * mask.to(alpha.dtype)


@register("sigmoid")
class Sigmoid(_Gate):
    name = "sigmoid"
    fn = staticmethod(torch.sigmoid)


@register("identity")
class Identity(_Gate):
    name = "identity"
    fn = staticmethod(lambda a: a)


@register("relu")
class Relu(_Gate):
    name = "relu"
    fn = staticmethod(torch.relu)


@register("gumbel")
class GumbelSoftmax:
    """Gumbel-softmax (Jang et al., ICLR 2017; EoiNAS): w = softmax((alpha + G) / T) over the
    available ops, G ~ Gumbel(0, 1) drawn from ``generator``, one sample per forward shared
    by all cells.  Without a generator (evaluation, criteria) it is softmax(alpha / T).
    The last sample is kept in ``last_sample`` (EoiNAS counts which op it favoured)."""

    name = "gumbel"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature
        self.generator: torch.Generator | None = None
        self.last_sample: torch.Tensor | None = None

    def __call__(self, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = alpha
        if self.generator is not None:
            uniform = torch.rand(alpha.shape, generator=self.generator, device=alpha.device,
                                 dtype=alpha.dtype)
            logits = alpha - torch.log(-torch.log(uniform.clamp_min(1e-20)))
        weights = torch.softmax((logits / self.temperature).masked_fill(~mask, float("-inf")), dim=-1)
        self.last_sample = weights.detach()
        return weights
