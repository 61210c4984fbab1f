"""Parameters and FLOPs of a cell's stand-alone network, counted as NAS-Bench-201 counts them.

NB201 (Dong & Yang, ICLR 2020, Sec. 3 and Table 1; the reference ``get_model_infos``) reports per
cell the network of its Fig. 1 (``bench.nets.cells.CellNetwork``) at C=16, N=5 on one 32x32 image:

- ``params``: every trainable parameter (stem, cells, residual reductions, BatchNorm weights and
  biases, the classifier), in millions of parameters (/1e6; running statistics are buffers);
- ``flops``: the multiply-adds of the convolutions and of the classifier, in millions: a conv
  costs k_h k_w C_in/groups C_out H_out W_out (+ C_out H_out W_out with a bias), the linear layer
  in x out + out.  BatchNorm, ReLU, pooling and the node sums are not counted.

Both depend on the number of classes through the classifier only; the benchmark's ``cifar10``
and ``cifar10-valid`` columns are the 10-class numbers (cifar100: 100, ImageNet16-120: 120 at
16x16, not covered here).  Examples (CIFAR-10): all-conv3x3 1.531546 M parameters and
220.11 MFLOPs, all-skip 0.073306 M and 7.78 MFLOPs.
"""
from __future__ import annotations

from functools import lru_cache
from numbers import Integral
from typing import Sequence

import torch
from torch import nn

from bench.errors import UserError
from bench.nb201 import space

SIZE = {"C": 16, "N": 5, "resolution": 32}
"""The benchmark's network size: channels, cells per stage, input side."""


def cell_cost(cell: str | Sequence[int], num_classes: int = 10) -> dict[str, float]:
    """``{"params_m", "flops_m"}`` of the cell's stand-alone network at the benchmark's size,
    memoised per cell (the first call for a cell builds its network; later calls are a lookup)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer (10 for CIFAR-10), not {num_classes!r}")
    params, flops = _cost(space.as_cell(cell), int(num_classes))
    return {"params_m": params, "flops_m": flops}


def agrees_with(truth, cell: str | Sequence[int], tolerance: float = 1e-6) -> bool | None:
    """Whether ``cell_cost`` equals the ground truth's ``cifar10_params`` / ``cifar10_flops`` (official
    files carry them) within ``tolerance`` M; None when the table has neither for this cell."""
    computed = cell_cost(cell)
    pairs = [(computed[key], truth.lookup(cell, [metric])[metric])
             for key, metric in (("params_m", "cifar10_params"), ("flops_m", "cifar10_flops"))
             if metric in truth.metric_names]
    pairs = [(ours, theirs) for ours, theirs in pairs if theirs == theirs]  # NaN: not in the table
    return all(abs(ours - theirs) <= tolerance for ours, theirs in pairs) if pairs else None


@lru_cache(maxsize=None)
def _cost(cell: space.Cell, num_classes: int) -> tuple[float, float]:
    from bench.nets.cells import CellNetwork, count_parameters

    with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's RNG alone
        net = CellNetwork(cell, C=SIZE["C"], N=SIZE["N"], num_classes=num_classes).eval()
    side = SIZE["resolution"]
    return count_parameters(net) / 1e6, multiply_adds(net, (1, 3, side, side)) / 1e6


def multiply_adds(net: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-adds per image of the ``nn.Conv2d`` and ``nn.Linear`` layers one forward calls
    (NB201's FLOPs), counted from the shapes that reach them."""
    total = 0

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = kh * kw * module.in_channels // module.groups
        else:
            per_output = module.in_features
        total += output.numel() * (per_output + (module.bias is not None)) // shape[0]

    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(count) for m in layers]
    try:
        with torch.no_grad():
            net(torch.zeros(shape, device=next(net.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return total
