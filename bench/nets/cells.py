"""Ops and cells of the NAS-Bench-201 networks, shared by the supernet (``bench.nets.supernet``),
its naive reference (``bench.nets.naive``) and the stand-alone discretized networks
(``TinyNetwork`` with ``InferCell`` of the NB201 reference code).

Layout (Dong & Yang, ICLR 2020, Sec. 2; ``docs/criteria.md`` §3): stem conv3x3 + BN; N cells at
C; residual reduction block; N cells at 2C; reduction; N cells at 4C; BN + ReLU, global
average pool, linear.  A search cell's mixed edge computes ``sum_o w[e, o] * op_o(x)`` (DARTS,
Liu et al., ICLR 2019, Eq. 2) with the exact shortcuts listed in ``bench.nets.supernet``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bench.nb201 import space

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
def batch_norm_groups(net: nn.Module, groups: int) -> Iterator[None]:
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
        tensor in compiled forwards, see ``skip_connect_dropout``).

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
                        y = skip_connect_dropout(source, skip_dropout)
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


def skip_connect_dropout(x: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
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


def copy_conv_bn(source: ConvBN, target: ConvBN) -> None:
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
