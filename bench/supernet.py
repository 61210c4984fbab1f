"""The NAS-Bench-201 supernet (``TinyNetworkDarts`` of the NB201 reference code) and its
stand-alone discretized networks (``TinyNetwork`` with ``InferCell``).

Layout (Dong & Yang, ICLR 2020, Sec. 2; ``docs/criteria.md`` §3): stem conv3x3 + BN; N cells at
C; residual reduction block; N cells at 2C; reduction; N cells at 4C; BN + ReLU, global
average pool, linear.  One architecture tensor ``alpha`` (6 x 5) is shared by all cells.

A mixed edge computes ``sum_o w[e, o] * op_o(x)`` (DARTS, Liu et al., ICLR 2019, Eq. 2)
where the weights come from a pluggable relaxation (``bench.relaxation``).  Exact
shortcuts against the reference (each tested against ``bench.naive``):

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
  layout says it pays (``Supernet._compiles``): inductor fuses each chain of batch norm,
  ReLU, dropout and weighted sums into one kernel.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import space
from bench.relaxation import Relaxation, get_relaxation

SKIP, CONV1, CONV3, POOL = 1, 2, 3, 4


class BatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that can normalise ``groups`` stacked batches (``Supernet.logits`` with a
    stack of mixing weights) each with its own batch statistics: the same ``batch_norm`` call per
    group, one after the other, so each group gets what a forward of it alone would get, and the
    running statistics take one update per group."""

    groups = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one group, or running stats
        if self.groups == 1 or (self.track_running_stats and not self.training):
            return super().forward(x)
        return torch.cat([super(BatchNorm, self).forward(part) for part in x.chunk(self.groups)])


@contextmanager
def _batch_norm_groups(net: nn.Module, groups: int) -> Iterator[None]:
    """Every ``BatchNorm`` of ``net`` normalises ``groups`` stacked batches separately while inside."""
    bns = [m for m in net.modules() if isinstance(m, BatchNorm)]
    for m in bns:
        m.groups = groups
    try:
        yield
    finally:
        for m in bns:
            m.__dict__.pop("groups", None)


class ConvBN(nn.Module):
    """Conv + BN of NB201's ``ReLUConvBN``; the ReLU is applied by the caller so it can be shared.

    As in the reference code the conv has a bias exactly when BN is not affine.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=not affine)
        self.bn = BatchNorm(c_out, affine=affine, track_running_stats=track)

    def forward(self, relu_x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(relu_x))


class ResidualReduction(nn.Module):
    """NB201 ``ResNetBasicblock`` with stride 2 (affine BN, running stats, as in the reference)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ConvBN(c_in, c_out, 3, 2, affine=True, track=True)
        self.conv_b = ConvBN(c_out, c_out, 3, 1, affine=True, track=True)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.conv_b(F.relu(self.conv_a(F.relu(x))))
        return self.shortcut(F.avg_pool2d(x, 2, 2)) + main


class Stem(nn.Sequential):
    def __init__(self, c: int):
        super().__init__(nn.Conv2d(3, c, 3, padding=1, bias=False), BatchNorm(c))


class Head(nn.Module):
    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.bn = BatchNorm(c)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.relu(self.bn(x)).mean(dim=(2, 3)))


def macro_blocks(C: int, N: int, make_cell) -> tuple[nn.ModuleList, int]:
    """The NB201 body: N cells at C, reduction, N cells at 2C, reduction, N cells at 4C."""
    blocks: list[nn.Module] = []
    channels = C
    for stage in range(3):
        if stage > 0:
            blocks.append(ResidualReduction(channels, channels * 2))
            channels *= 2
        blocks.extend(make_cell(channels) for _ in range(N))
    return nn.ModuleList(blocks), channels


_COUNT_MAPS: dict[tuple, torch.Tensor] = {}


def avg_pool_3x3(x: torch.Tensor) -> torch.Tensor:
    """``AvgPool2d(3, stride 1, pad 1, count_include_pad=False)`` as a depthwise box sum / count."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    key = (c, h, w, x.dtype, x.device)
    if key not in _COUNT_MAPS:
        rows = torch.full((h,), 3.0)
        rows[0] = rows[-1] = 2.0
        cols = torch.full((w,), 3.0)
        cols[0] = cols[-1] = 2.0
        count = (rows[:, None] * cols[None, :]).to(device=x.device, dtype=x.dtype)
        ones = torch.ones(c, 1, 3, 3, device=x.device, dtype=x.dtype)
        _COUNT_MAPS[key] = (ones, count)
    ones, count = _COUNT_MAPS[key]
    return F.conv2d(x, ones, padding=1, groups=c) / count


class MixedEdge(nn.Module):
    """The parametric ops of one edge: ``nor_conv_1x1`` and ``nor_conv_3x3`` (BN affine=False)."""

    def __init__(self, c: int, affine: bool, track: bool):
        super().__init__()
        self.nor_conv_1x1 = ConvBN(c, c, 1, 1, affine, track)
        self.nor_conv_3x3 = ConvBN(c, c, 3, 1, affine, track)

    def conv(self, op: int) -> ConvBN:
        return self.nor_conv_1x1 if op == CONV1 else self.nor_conv_3x3


class SearchCell(nn.Module):
    """Four nodes, six mixed edges; node j = sum over i<j of edge(i->j)(x_i)."""

    fuse_convs = True
    """Run the convs of one kind that read the same node as one convolution (``node_convs``)."""

    def __init__(self, c: int, affine: bool = False, track: bool = True):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(c, affine, track) for _ in space.EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Sequence[Sequence[int]],
                skip_dropout: float | torch.Tensor = 0.0) -> torch.Tensor:
        """``weights``: (6, 5) op weights, or (batch, 6, 5) one per image; ``active[e]``: the op
        indices to compute on edge e;
        ``skip_dropout``: dropout probability on skip_connect outputs (EoiNAS; 0 = off; a
        tensor in compiled forwards, see ``_skip_dropout``).

        Node by node: once node i is complete, every op on the edges leaving it is computed and
        added, weighted, to the running total of its destination node, in edge order, then op
        order."""
        nodes = [x]
        totals: dict[int, torch.Tensor | None] = {1: None, 2: None, 3: None}
        for i in (0, 1, 2):
            source = nodes[i]
            leaving = [(e, j) for e, (j, src) in enumerate(space.EDGES) if src == i]
            convs = [(e, op) for e, _ in leaving for op in active[e] if op in (CONV1, CONV3)]
            conv_out = node_convs(self.edges, F.relu(source), convs, self.fuse_convs) if convs else {}
            pool = None
            for e, j in leaving:
                for op in active[e]:
                    if op == SKIP:
                        y = _skip_dropout(source, skip_dropout)
                    elif op == POOL:
                        pool = avg_pool_3x3(source) if pool is None else pool
                        y = pool
                    elif op in (CONV1, CONV3):
                        y = conv_out[(e, op)]
                    else:
                        continue
                    # total + y * w in one pass over memory (instead of a product, then a sum)
                    w = weights[e, op] if weights.dim() == 2 else weights[:, e, op].view(-1, 1, 1, 1)
                    total = totals[j]
                    totals[j] = y * w if total is None else torch.addcmul(total, y, w)
            total = totals[i + 1]
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[3]


def _skip_dropout(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
    """EoiNAS's dropout on skip_connect.  A float ``p`` is ``F.dropout``; a tensor ``p`` (the
    compiled forward: EoiNAS changes p every epoch, and a float would compile a graph per
    value) keeps each element with probability 1 - p and scales by 1 / (1 - p), the same
    distribution from the compiled code's own random stream."""
    if isinstance(p, torch.Tensor):
        return x * (torch.rand_like(x) >= p) / (1 - p)
    return F.dropout(x, p) if p > 0 else x


def node_convs(edges: nn.ModuleList, relu_x: torch.Tensor, convs: list[tuple[int, int]],
               fuse: bool = True) -> dict[tuple[int, int], torch.Tensor]:
    """``ConvBN`` outputs of the (edge, op) pairs ``convs``, all reading the same node.

    With ``fuse``, the convs of one kernel size run as one convolution whose output channels
    are the edges' channels side by side, and their BNs as one ``batch_norm`` over them (per
    channel, so exactly what the separate modules compute); each BN's running statistics and
    batch counter are updated as ``nn.BatchNorm2d`` does.  One wide conv replaces two or three
    narrow ones."""
    out: dict[tuple[int, int], torch.Tensor] = {}
    for op in (CONV1, CONV3):
        group = [e for e, o in convs if o == op]
        if not group:
            continue
        modules = [edges[e].conv(op) for e in group]
        if len(group) == 1 or not fuse:
            for e, m in zip(group, modules):
                out[(e, op)] = m(relu_x)
            continue
        first = modules[0]
        weight = torch.cat([m.conv.weight for m in modules])
        bias = torch.cat([m.conv.bias for m in modules]) if first.conv.bias is not None else None
        y = F.conv2d(relu_x, weight, bias, padding=first.conv.padding)
        y = _fused_batch_norm([m.bn for m in modules], y)
        for e, part in zip(group, y.split(first.conv.out_channels, dim=1)):
            out[(e, op)] = part
    return out


def _fused_batch_norm(bns: list[BatchNorm], y: torch.Tensor) -> torch.Tensor:
    """``BatchNorm.forward`` of several BNs (same settings) on their channels side by side."""
    bn = bns[0]
    track = bn.track_running_stats
    use_batch_stats = bn.training or not track
    mean = torch.cat([b.running_mean for b in bns]) if track else None
    var = torch.cat([b.running_var for b in bns]) if track else None
    weight = torch.cat([b.weight for b in bns]) if bn.affine else None
    shift = torch.cat([b.bias for b in bns]) if bn.affine else None
    parts = []
    for part in (y.chunk(bn.groups) if use_batch_stats and bn.groups > 1 else (y,)):
        momentum = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and track:
            for b in bns:
                b.num_batches_tracked.add_(1)
            if bn.momentum is None:
                momentum = 1.0 / float(bn.num_batches_tracked)
        parts.append(F.batch_norm(part, mean, var, weight, shift, use_batch_stats, momentum, bn.eps))
    if track and bn.training:
        with torch.no_grad():
            for b, m, v in zip(bns, mean.split(bn.num_features), var.split(bn.num_features)):
                b.running_mean.copy_(m)
                b.running_var.copy_(v)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class Supernet(nn.Module):
    """NB201 weight-sharing supernet with one shared alpha (6 x 5).

    State besides the weights:
    - ``alpha``: architecture parameter, initialised 1e-3 * N(0, 1) as in the reference;
    - ``op_mask`` (bool 6 x 5): ops still in the space (pruning removes them from compute
      and from the relaxation, which renormalises over what is left);
    - ``fixed`` (6 entries, op index or None): edges discretized to one op (weight 1).
    ``implementation`` selects the forward: "fast" (this module) or "naive" (``bench.naive``,
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
        self.compiled = False  # training forwards through torch.compile (``_compiles``; set by the search)
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
            from bench.naive import naive_forward

            return naive_forward(self, x, weights)
        active = tuple(self.active_ops(compute_mask))
        skip_dropout = self.skip_dropout if self.training else 0.0
        if self._compiles(x, compute_mask):
            if skip_dropout > 0:
                skip_dropout = torch.tensor(skip_dropout, device=x.device, dtype=x.dtype)
            try:
                return _compiled_body()(self, x, weights, active, skip_dropout)
            except Exception as error:  # noqa: BLE001 - compiler missing or failing: stay correct, run eager
                if not _compile_failed(self, error):
                    raise
        return _body(self, x, weights, active, skip_dropout)

    stacks_weights = True
    """Whether ``logits`` takes a stack of mixing weights (``_stacked_logits``)."""

    def _stacked_logits(self, x: torch.Tensor, weights: torch.Tensor,
                        compute_mask: np.ndarray | None) -> torch.Tensor:
        """Logits of K mixing weights (``weights``: K x 6 x 5) in one forward: ``x`` holds K copies
        of one batch stacked, copy k mixed with ``weights[k]``, each copy's BatchNorm statistics its
        own (``BatchNorm.groups``), so copy k's logits are those of ``logits(x_k, weights[k])``, up to
        float rounding (convs and matmuls on a bigger batch).  Eager; ``compute_mask`` may skip only
        ops whose weight is zero in every copy.  DARTS-PT evaluates its masks this way
        (``bench.evaluate.evaluate_each``)."""
        groups = weights.shape[0]
        if self.implementation != "fast" or not self.stacks_weights or x.shape[0] % groups:
            raise ValueError(f"stacked mixing weights need the fast supernet and a batch of {groups} "
                             f"equal parts")
        per_image = weights.repeat_interleave(x.shape[0] // groups, dim=0)
        skip_dropout = self.skip_dropout if self.training else 0.0
        with _batch_norm_groups(self, groups):
            return _body(self, x, per_image, tuple(self.active_ops(compute_mask)), skip_dropout)

    def _compiles(self, x: torch.Tensor, compute_mask: np.ndarray | None) -> bool:
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
                        _copy_conv_bn(self.conv_of(source, e, op), block.ops[e])
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


def _compiled_body():
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


def _copy_conv_bn(source: ConvBN, target: ConvBN) -> None:
    with torch.no_grad():
        target.conv.weight.copy_(source.conv.weight)
        if source.bn.track_running_stats and target.bn.track_running_stats:
            target.bn.running_var.copy_(source.bn.running_var)
            target.bn.num_batches_tracked.copy_(source.bn.num_batches_tracked)
            mean = source.bn.running_mean.clone()
            if source.conv.bias is not None:
                mean -= source.conv.bias
            target.bn.running_mean.copy_(mean)
        if source.bn.affine:
            target.bn.weight.copy_(source.bn.weight)
            target.bn.bias.copy_(source.bn.bias)


class InferCell(nn.Module):
    """A fixed NB201 cell (reference ``InferCell``): one op per edge, affine BN."""

    def __init__(self, cell: Sequence[int], c: int):
        super().__init__()
        self.cell = tuple(cell)
        self.ops = nn.ModuleList(
            ConvBN(c, c, 1 if op == CONV1 else 3, 1, affine=True, track=True) if op in (CONV1, CONV3)
            else nn.Identity()
            for op in self.cell
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in (1, 2, 3):
            total = None
            for e, (j, i) in enumerate(space.EDGES):
                if j != to or self.cell[e] == 0:
                    continue
                op, source = self.cell[e], nodes[i]
                if op == SKIP:
                    y = source
                elif op == POOL:
                    y = avg_pool_3x3(source)
                else:
                    y = self.ops[e](F.relu(source))
                total = y if total is None else total + y
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[3]


class CellNetwork(nn.Module):
    """Stand-alone NB201 network (reference ``TinyNetwork``) for one cell."""

    def __init__(self, cell: Sequence[int] | str, C: int = 16, N: int = 5, num_classes: int = 10):
        super().__init__()
        self.cell = space.as_cell(cell)
        self.stem = Stem(C)
        self.cells, channels = macro_blocks(C, N, lambda c: InferCell(self.cell, c))
        self.head = Head(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.cells:
            h = block(h)
        return self.head(h)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def clone_supernet(net: Supernet) -> Supernet:
    """A deep copy (weights, alpha, masks, fixed edges) for criteria that modify the supernet."""
    return copy.deepcopy(net)
