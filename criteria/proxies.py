"""Zero-cost proxies: a network's score at its current weights from one batch, higher = better.

Every proxy is ``proxy(net, forward, x, y) -> float``: ``net`` is the module whose weights and
layers are inspected, ``forward(x)`` runs it (a supernet with overridden mixing weights, or a
stand-alone cell network).  Each sets the BatchNorm handling it was published with.

- ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021, Eq. 2):
  log |det K_H| where K_H[i, j] counts the ReLU units on which images i and j of the batch have
  the same binary activation code (1 = the ReLU's input is positive), summed over every ReLU of
  the network; BatchNorm in eval mode, as the zc-pt code scores it.  Which ReLUs: one per
  ReLU-conv-BN op computed (``bench.nets.cells.ConvBN``, whose input is always a ReLU output here;
  NB201's ``ReLUConvBN`` has a ReLU module of its own), the head's ReLU and any ``nn.ReLU`` module.
  The fast supernet shares one ReLU between the convs that read a node: its code is counted once
  per conv that reads it, so the kernel is the one of NB201's per-op ReLU modules.
- ``synflow`` (Tanaka et al., NeurIPS 2020, Eq. 3; as a zero-cost proxy, Abdelfattah et al.,
  "Zero-Cost Proxies for Lightweight NAS", ICLR 2021): R = sum of the outputs for an all-ones
  input with every parameter replaced by its absolute value, in float64, BatchNorm bypassed;
  score = sum over conv and linear weights of theta * dR/dtheta.
- ``grad_norm`` (Abdelfattah et al., ICLR 2021): sum over conv and linear weights of the L2 norm
  of the cross-entropy gradient on the batch, BatchNorm in train mode.

"Conv and linear weights" are the parameters of two or more dimensions other than ``alpha``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from bench.errors import UserError
from bench.nets.evaluate import bn_mode

Forward = Callable[[torch.Tensor], torch.Tensor]
Proxy = Callable[[nn.Module, Forward, torch.Tensor, torch.Tensor], float]


# -- NASWOT -------------------------------------------------------------------------------
def code_kernel(codes: torch.Tensor) -> torch.Tensor:
    """c c^T + (1 - c)(1 - c)^T for binary codes ``c`` (batch x units), in float64: entry (i, j) is
    the number of units on which images i and j agree (units minus their Hamming distance)."""
    c = codes.flatten(1).float()
    gram = (c @ c.t()).double()  # integer counts, exact in float32 below 2^24 units
    ones = c.sum(1).double()
    return 2.0 * gram - ones[:, None] - ones[None, :] + float(c.shape[1])


class _KernelRecorder:
    """Adds the code kernel of every ReLU input it is shown to ``kernel``; a tensor read by several
    convs (the shared ReLU of a supernet node) is counted once per read, its kernel computed once."""

    def __init__(self):
        self.kernel: torch.Tensor | None = None
        self.relus = 0
        self._seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def add(self, relu_input: torch.Tensor) -> None:
        key = id(relu_input)
        if key not in self._seen:  # the tensor is kept in _seen, so its id cannot be reused meanwhile
            self._seen[key] = (relu_input, code_kernel(relu_input.detach() > 0))
        part = self._seen[key][1]
        self.kernel = part.clone() if self.kernel is None else self.kernel + part
        self.relus += 1


@contextmanager
def recording_relus(net: nn.Module) -> Iterator[_KernelRecorder]:
    """Hooks that feed every ReLU input of ``net`` to a ``_KernelRecorder``.  The supernet's node
    convs run unfused meanwhile, so each conv op is its own module call."""
    from bench.nets.cells import ConvBN, Head, SearchCell

    recorder = _KernelRecorder()
    handles = []
    for module in net.modules():
        if isinstance(module, (ConvBN, nn.ReLU)):
            handles.append(module.register_forward_pre_hook(lambda m, args: recorder.add(args[0])))
        elif isinstance(module, Head):
            handles.append(module.bn.register_forward_hook(lambda m, args, out: recorder.add(out)))
    cells = [m for m in net.modules() if isinstance(m, SearchCell)]
    fused = [c.__dict__.get("fuse_convs") for c in cells]
    for cell in cells:
        cell.fuse_convs = False
    try:
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
        for cell, value in zip(cells, fused):
            if value is None:
                cell.__dict__.pop("fuse_convs", None)
            else:
                cell.fuse_convs = value


def log_abs_det(kernel: torch.Tensor | np.ndarray) -> float:
    """log |det K| in float64 (-inf for a singular K, e.g. two images with identical codes)."""
    return float(torch.linalg.slogdet(torch.as_tensor(kernel, dtype=torch.float64))[1])


def naswot(net: nn.Module, forward: Forward, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad(), bn_mode(net, "eval"), recording_relus(net) as recorder:
        forward(x)
    if recorder.kernel is None:
        raise ValueError("naswot: the network applied no ReLU")
    return log_abs_det(recorder.kernel)


# -- synflow and grad_norm -------------------------------------------------------------------
def _scored_weights(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in net.named_parameters() if p.dim() >= 2 and n != "alpha"]


class _NoBatchNorm(TorchFunctionMode):
    """Every ``F.batch_norm`` inside returns its input (synflow's networks have no BatchNorm)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.batch_norm:
            return args[0]
        return func(*args, **(kwargs or {}))


def synflow(net: nn.Module, forward: Forward, x: torch.Tensor, y: torch.Tensor) -> float:
    scored = dict(_scored_weights(net))
    saved = {n: p.detach().clone() for n, p in net.named_parameters()}
    was_dtype = next(net.parameters()).dtype
    try:
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        net.double()
        ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64, device=x.device)
        with bn_mode(net, "eval"), _NoBatchNorm():
            total = forward(ones).sum()
        params = list(scored.values())
        grads = torch.autograd.grad(total, params, allow_unused=True)
        score = sum(float((p.detach() * g).sum()) for p, g in zip(params, grads) if g is not None)
    finally:
        net.to(was_dtype)
        with torch.no_grad():
            for n, p in net.named_parameters():
                p.copy_(saved[n])
    return score


def grad_norm(net: nn.Module, forward: Forward, x: torch.Tensor, y: torch.Tensor) -> float:
    params = [p for _, p in _scored_weights(net)]
    with bn_mode(net, "train"):
        loss = F.cross_entropy(forward(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return float(sum(float(g.norm()) for g in grads if g is not None))


PROXIES: dict[str, Proxy] = {"naswot": naswot, "synflow": synflow, "grad_norm": grad_norm}


def get(name: str) -> Proxy:
    if name not in PROXIES:
        raise UserError(f"Unknown zero-cost proxy {name!r} (option zc-pt.proxy); "
                        f"use one of {', '.join(PROXIES)}")
    return PROXIES[name]
