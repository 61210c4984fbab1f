"""Bilevel supernet search: DARTS first order (V1) and second order (V2) on NAS-Bench-201.

DARTS (Liu, Simonyan, Yang, ICLR 2019): weights w minimise the training loss, alpha the
validation loss.  First order (Eq. 6 with xi = 0): alpha-gradient at the current w.
Second order (Eq. 7-8): the gradient at the unrolled weights w' = w - xi * (mu * m +
grad_w L_train + lambda * w), minus xi times a finite-difference Hessian-vector product
(docs/criteria.md §8.1).  Step orders: NB201 DARTS-V1 does the weight step then the alpha
step; darts-pt the alpha step first; V2 always unrolls the alpha step first.

Deviation, documented: the unrolled and finite-difference passes of V2 run on copies of
the BatchNorm buffers, so they do not update the running statistics (the reference
updates them as a side effect of its HVP passes).
"""
from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench.errors import UserError

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


class NonFiniteLoss(UserError):
    """A NaN/inf loss or alpha stopped the run; checkpoints written before it are intact."""


def make_optimizers(net: Supernet, cfg: SearchConfig) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay, nesterov=cfg.w_nesterov and cfg.w_momentum > 0)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2),
                             weight_decay=cfg.a_weight_decay, eps=cfg.a_eps)
    return w_opt, a_opt


def cosine_lr(cfg: SearchConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine from w_lr to w_lr_min over cfg.epochs, per epoch."""
    return cfg.w_lr_min + (cfg.w_lr - cfg.w_lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2


@contextlib.contextmanager
def frozen(params: list[torch.nn.Parameter]):
    """``params`` without gradients for the duration: a step builds no autograd graph for
    what it does not update, and a compiled step gets a backward without those gradients
    (measured in docs/speed.md)."""
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, was):
            p.requires_grad_(flag)


def weight_step(
    net: Supernet, w_opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the weights; returns (loss, number correct) as device tensors."""
    w_opt.zero_grad(set_to_none=True)
    weights = net.weight_parameters()
    if net.implementation == "naive":
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()  # the reference computes (and later discards) the alpha gradient too
        net.alpha.grad = None
    else:
        with frozen(net.arch_parameters()):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward(inputs=weights)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    w_opt.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def alpha_step(
    net: Supernet, a_opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order alpha step: grad of the validation loss w.r.t. the architecture parameters
    only (alpha, and EnTranNAS's node thresholds); no weight gradients."""
    a_opt.zero_grad(set_to_none=True)
    if net.implementation == "naive":
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()  # the reference computes every weight gradient and throws it away
        for p in net.weight_parameters():
            p.grad = None
    else:
        params = net.arch_parameters()
        with frozen(net.weight_parameters()):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
    a_opt.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def _loss(net: Supernet, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(functional_call(net, (params, buffers), (x,)), y)


def unrolled_alpha_gradient(
    net: Supernet, w_opt: torch.optim.SGD, lr: float, train: tuple, valid: tuple, radius_scale: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS second-order hypergradient (docs/criteria.md §8.1) at the current w, alpha.

    Returns (gradient for alpha, validation loss at w').  The momentum buffer, weight decay
    and learning rate come from the weight optimiser, as in the reference.  The
    Hessian-vector product is a central difference with radius ``radius_scale / ||v||``
    (0.01 in DARTS, Eq. 8).
    """
    names = [n for n, _ in net.named_parameters() if n != "alpha"]
    weights = dict(net.named_parameters())
    w = [weights[n] for n in names]
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    group = w_opt.param_groups[0]
    momentum, decay = group["momentum"], group["weight_decay"]
    alpha = net.alpha

    grads = torch.autograd.grad(_loss(net, weights, buffers, *train), w)
    w_prime = []
    for p, g in zip(w, grads):
        state = w_opt.state.get(p, {})
        step = g + decay * p
        if momentum > 0 and state.get("momentum_buffer") is not None:
            step = step + momentum * state["momentum_buffer"]
        w_prime.append((p - lr * step).detach().requires_grad_())
    val_loss = _loss(net, {**dict(zip(names, w_prime)), "alpha": alpha}, buffers, *valid)
    g_alpha, *v = torch.autograd.grad(val_loss, [alpha] + w_prime)
    radius = radius_scale / torch.sqrt(sum((t * t).sum() for t in v))

    def alpha_grad_at(sign: float) -> torch.Tensor:
        shifted = {n: (p + sign * radius * t).detach() for n, p, t in zip(names, w, v)}
        return torch.autograd.grad(_loss(net, {**shifted, "alpha": alpha}, buffers, *train), [alpha])[0]

    hessian_vector = (alpha_grad_at(+1.0) - alpha_grad_at(-1.0)) / (2 * radius)
    return g_alpha - lr * hessian_vector, val_loss.detach()


def second_order_alpha_step(
    net: Supernet, w_opt: torch.optim.SGD, a_opt: torch.optim.Adam, lr: float, train: tuple, valid: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    a_opt.zero_grad(set_to_none=True)
    grad, val_loss = unrolled_alpha_gradient(net, w_opt, lr, train, valid)
    net.alpha.grad = grad
    a_opt.step()
    with torch.no_grad():
        correct = (net(valid[0]).argmax(1) == valid[1]).sum()
    return val_loss, correct
