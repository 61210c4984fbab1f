"""The NAS-Bench-201 supernet (``TinyNetworkDarts`` of the NB201 reference code); its ops and
cells, and the stand-alone discretized networks, are in ``bench.nets.cells``.

Layout (Dong & Yang, ICLR 2020, Sec. 2; ``docs/criteria.md`` §3): stem conv3x3 + BN; N cells at
C; residual reduction block; N cells at 2C; reduction; N cells at 4C; BN + ReLU, global
average pool, linear.  One architecture tensor ``alpha`` (6 x 5) is shared by all cells.

A mixed edge computes ``sum_o w[e, o] * op_o(x)`` (DARTS, Liu et al., ICLR 2019, Eq. 2)
where the weights come from a pluggable relaxation (``bench.nets.relaxation``).  Exact
shortcuts against the reference (each tested against ``bench.nets.naive``):

- ``none`` is never computed (its output is zero);
- the ReLU of a node is computed once and shared by every conv reading that node;
- ``avg_pool_3x3`` of a node is computed once per node (every edge leaving a node pools
  the same tensor), as a depthwise box-sum convolution divided by a precomputed count
  map, which equals ``AvgPool2d(3, 1, 1, count_include_pad=False)``;
- ops that are masked (pruned / perturbed), or edges fixed to one op, skip the rest;
- the convs of one kernel size that read the same node run as one wide convolution with
  one batch norm (``node_convs``), where ``bench.device.supernet_layout`` says it wins;
- weights and activations in channels_last, likewise where it wins;
- each node accumulates ``total + w * y`` with ``addcmul`` (one pass over memory per term);
- the search's training forwards (and their backwards) through ``torch.compile``, where the
  layout says it pays (``Supernet.compiles``): inductor fuses each chain of batch norm,
  ReLU, dropout and weighted sums into one kernel.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from bench.nb201 import space
from bench.nets.cells import (CONV1, CONV3, CellNetwork, ConvBN, Head, ResidualReduction, SearchCell, Stem,
                              batch_norm_groups, copy_conv_bn, macro_blocks)
from bench.nets.naive import naive_cell_forward
from bench.nets.relaxation import Relaxation, get_relaxation


class Supernet(nn.Module):
    """NB201 weight-sharing supernet with one shared alpha (6 x 5).

    State besides the weights:
    - ``alpha``: architecture parameter, initialised 1e-3 * N(0, 1) as in the reference;
    - ``op_mask`` (bool 6 x 5): ops still in the space (pruning removes them from compute
      and from the relaxation, which renormalises over what is left);
    - ``fixed`` (6 entries, op index or None): edges discretized to one op (weight 1).
    ``implementation`` selects the forward: "fast" (this module) or "naive" (``bench.nets.naive``,
    the reference-faithful baseline kept for timing and as a test oracle).
    """

    cell_class: type[nn.Module] = SearchCell

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, affine: bool = False,
                 track_running_stats: bool = True, relaxation: str | Relaxation = "softmax",
                 implementation: str = "fast"):
        super().__init__()
        self.config = {"C": C, "N": N, "num_classes": num_classes, "affine": affine,
                       "track_running_stats": track_running_stats}
        self.stem = Stem(C)
        self.cells, channels = macro_blocks(C, N, lambda c: self.cell_class(c, affine, track_running_stats))
        self.head = Head(channels, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(space.NUM_EDGES, space.NUM_OPS))
        self.relaxation = get_relaxation(relaxation) if isinstance(relaxation, str) else relaxation
        self.register_buffer("op_mask", torch.ones(space.NUM_EDGES, space.NUM_OPS, dtype=torch.bool))
        self.fixed: list[int | None] = [None] * space.NUM_EDGES
        self.skip_dropout = 0.0
        self.memory_format = torch.contiguous_format
        self.precision = "fp32"  # "bf16": every forward under bf16 autocast (bench.device.autocast)
        self.compiled = False  # training forwards through torch.compile (``compiles``; set by the search)
        self._compiled_batch: int | None = None
        if implementation not in ("fast", "naive"):
            raise ValueError(f"implementation must be 'fast' or 'naive', not {implementation!r}")
        self.implementation = implementation

    def use_layout(self, memory_format: torch.memory_format, fuse_convs: bool = True,
                   compile: bool = False) -> "Supernet":
        """Keep conv weights and activations in ``memory_format``, fuse (or not) the convs
        that read one node and compile (or not) the training forwards
        (``bench.device.supernet_layout`` chooses all three); the naive reference stays NCHW,
        unfused and eager, as the reference code is."""
        if self.implementation == "fast":
            self.memory_format = memory_format
            self.compiled = compile
            self.to(memory_format=memory_format)
            for block in self.cells:
                if isinstance(block, SearchCell):
                    block.fuse_convs = fuse_convs
        return self

    # -- parameters -------------------------------------------------------------------
    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    # -- architecture state ----------------------------------------------------------
    def arch_weights(self) -> torch.Tensor:
        """Mixing weights (6 x 5): the relaxation over unmasked ops, fixed edges one-hot."""
        weights = self.relaxation(self.alpha, self.op_mask)
        if any(f is not None for f in self.fixed):
            onehot = torch.zeros_like(weights)
            keep = torch.ones(space.NUM_EDGES, 1, dtype=weights.dtype, device=weights.device)
            for e, op in enumerate(self.fixed):
                if op is not None:
                    onehot[e, op] = 1.0
                    keep[e] = 0.0
            weights = weights * keep + onehot
        return weights

    def active_ops(self, extra_mask: np.ndarray | None = None) -> list[tuple[int, ...]]:
        """Ops computed on each edge: unmasked, not ``none``, only the fixed op on fixed edges."""
        mask = self.op_mask.cpu().numpy()
        if extra_mask is not None:
            mask = mask & np.asarray(extra_mask, dtype=bool)
        active = []
        for e in range(space.NUM_EDGES):
            if self.fixed[e] is not None:
                active.append(() if self.fixed[e] == 0 else (self.fixed[e],))
            else:
                active.append(tuple(o for o in range(1, space.NUM_OPS) if mask[e, o]))
        return active

    def fix_edge(self, edge: int, op: int) -> None:
        self.fixed[edge] = int(op)

    def prune(self, edge: int, op: int) -> None:
        """Remove op from edge (from compute and from the relaxation)."""
        if int(self.op_mask[edge].sum()) <= 1:
            raise ValueError(f"cannot prune the last op of edge {edge}")
        self.op_mask[edge, op] = False

    # -- forward ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                compute_mask: np.ndarray | None = None) -> torch.Tensor:
        """Logits (see ``logits``), under autocast when ``precision`` is bf16 (returned in fp32,
        so the loss is computed in fp32)."""
        from bench.device import autocast

        with autocast(x.device, self.precision):
            out = self.logits(x, weights, compute_mask)
        return out if self.precision == "fp32" else out.float()  # fp32 as it is (float64 nets too)

    def logits(self, x: torch.Tensor, weights: torch.Tensor | None = None,
               compute_mask: np.ndarray | None = None) -> torch.Tensor:
        """Logits.  ``weights`` overrides the mixing weights (e.g. a perturbation that zeroes
        one op without renormalising); ``compute_mask`` (bool 6 x 5) additionally skips ops
        whose weight the caller knows to be zero."""
        if weights is None:
            weights = self.arch_weights()
        if weights.dim() == 3:
            return self._stacked_logits(x, weights, compute_mask)
        if self.implementation == "naive":
            return self._naive_logits(x, weights)
        active = tuple(self.active_ops(compute_mask))
        skip_dropout = self.skip_dropout if self.training else 0.0
        if self.compiles(x, compute_mask):
            if skip_dropout > 0:
                skip_dropout = torch.tensor(skip_dropout, device=x.device, dtype=x.dtype)
            try:
                return compiled_body()(self, x, weights, active, skip_dropout)
            except Exception as error:  # noqa: BLE001 - compiler missing or failing: stay correct, run eager
                if not _compile_failed(self, error):
                    raise
        return _body(self, x, weights, active, skip_dropout)

    def _naive_logits(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The reference-faithful forward: every op of every edge (``bench.nets.naive``)."""
        h = self.stem(x)
        for block in self.cells:
            h = naive_cell_forward(block, h, weights) if isinstance(block, SearchCell) else block(h)
        return self.head(h)

    stacks_weights = True
    """Whether ``logits`` takes a stack of mixing weights (``_stacked_logits``)."""

    def _stacked_logits(self, x: torch.Tensor, weights: torch.Tensor,
                        compute_mask: np.ndarray | None) -> torch.Tensor:
        """Logits of K mixing weights (``weights``: K x 6 x 5) in one forward: ``x`` holds K copies
        of one batch stacked, copy k mixed with ``weights[k]``, each copy's BatchNorm statistics its
        own (``BatchNorm.groups``), so copy k's logits are those of ``logits(x_k, weights[k])``, up to
        float rounding (convs and matmuls on a bigger batch).  Eager; ``compute_mask`` may skip only
        ops whose weight is zero in every copy.  DARTS-PT evaluates its masks this way
        (``bench.nets.evaluate.evaluate_each``)."""
        groups = weights.shape[0]
        if self.implementation != "fast" or not self.stacks_weights or x.shape[0] % groups:
            raise ValueError(f"stacked mixing weights need the fast supernet and a batch of {groups} "
                             f"equal parts")
        per_image = weights.repeat_interleave(x.shape[0] // groups, dim=0)
        skip_dropout = self.skip_dropout if self.training else 0.0
        with batch_norm_groups(self, groups):
            return _body(self, x, per_image, tuple(self.active_ops(compute_mask)), skip_dropout)

    def compiles(self, x: torch.Tensor, compute_mask: np.ndarray | None) -> bool:
        """Whether this forward goes through ``torch.compile``: training forwards of the search
        only (``compiled`` set, train mode, gradients on, no compute mask) and only at the batch
        size of the first compiled forward, so that a short last batch runs eager instead of
        compiling a second graph for one step."""
        if not (self.compiled and self.training and torch.is_grad_enabled() and compute_mask is None):
            return False
        if self._compiled_batch is None:
            self._compiled_batch = x.shape[0]
        return x.shape[0] == self._compiled_batch

    # -- extra state for checkpoints ------------------------------------------------------
    def arch_state(self) -> dict:
        return {"op_mask": self.op_mask.cpu().tolist(), "fixed": list(self.fixed)}

    def load_arch_state(self, state: dict) -> None:
        self.op_mask.copy_(torch.tensor(state["op_mask"], dtype=torch.bool))
        self.fixed = list(state["fixed"])

    def discretize(self, cell: Sequence[int] | str, inherit: bool = True) -> "CellNetwork":
        """The stand-alone NB201 network of ``cell`` (affine BN in cells, as the benchmark
        trained it).  With ``inherit`` it starts from this supernet's weights: stem,
        reductions, head and the chosen convs; a supernet conv bias is folded into the BN
        running mean, so in train mode (and eval mode with tracked stats) it computes what
        the supernet computes with every edge fixed to ``cell``."""
        cell = space.as_cell(cell)
        cfg = self.config
        net = CellNetwork(cell, C=cfg["C"], N=cfg["N"], num_classes=cfg["num_classes"]).to(self.alpha.device)
        if inherit:
            net.stem.load_state_dict(self.stem.state_dict())
            net.head.load_state_dict(self.head.state_dict())
            for block, source in zip(net.cells, self.cells):
                if isinstance(source, ResidualReduction):
                    block.load_state_dict(source.state_dict())
                    continue
                for e, op in enumerate(cell):
                    if op in (CONV1, CONV3):
                        copy_conv_bn(self.conv_of(source, e, op), block.ops[e])
        return net

    @staticmethod
    def conv_of(cell: nn.Module, edge: int, op: int) -> ConvBN:
        """The conv module that op ``op`` uses on ``edge`` of a search cell."""
        return cell.edges[edge].conv(op)


def _body(net: Supernet, x: torch.Tensor, weights: torch.Tensor, active: tuple[tuple[int, ...], ...],
          skip_dropout: float | torch.Tensor) -> torch.Tensor:
    """Stem, cells, head of the fast supernet for the given mixing weights and active ops."""
    h = net.stem(x.contiguous(memory_format=net.memory_format))
    for block in net.cells:
        h = block(h, weights, active, skip_dropout) if isinstance(block, SearchCell) else block(h)
    return net.head(h)


_COMPILED = None


def compiled_body():
    """``_body`` through ``torch.compile`` (one compiled graph per active-op pattern, train or
    eval mode and shape; shared by every supernet instance of the same structure)."""
    global _COMPILED
    if _COMPILED is None:
        import torch._dynamo

        # a search compiles two graphs (weight step, alpha step) per op pattern: NAP and EoiNAS go
        # through 4 patterns, more than dynamo's default of 8 graphs per function before it gives up
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED = torch.compile(_body, dynamic=False)
    return _COMPILED


def _compile_failed(net: Supernet, error: Exception) -> bool:
    """After a failed compiled forward: whether eager can take over.  Compilation failures
    (no C++ compiler, no Triton, an unsupported op) switch ``net`` to eager with a warning;
    anything else is re-raised (the eager forward would fail the same way)."""
    from torch._dynamo.exc import BackendCompilerFailed, Unsupported

    if not isinstance(error, (BackendCompilerFailed, Unsupported)):
        return False
    import warnings

    cause = getattr(error, "inner_exception", None) or error
    reason = (str(cause).strip().splitlines() or [""])[0][:200]
    warnings.warn(f"torch.compile failed ({type(cause).__name__}: {reason}); the supernet "
                  f"runs eager (same numbers, slower). Set BENCH_COMPILE=0 to skip the attempt.",
                  RuntimeWarning)
    net.compiled = False
    return True


def clone_supernet(net: Supernet) -> Supernet:
    """A deep copy (weights, alpha, masks, fixed edges) for criteria that modify the supernet."""
    return copy.deepcopy(net)
