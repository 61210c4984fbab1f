"""EnTranNAS on NAS-Bench-201 (Yang et al., CVPR 2021; docs/criteria.md §8.5) [recon].

- Engine cells are differentiable: node j = sum over edges (i -> j) and ops k of
  w[e, k] * o^k(x_i), with w = softmax(alpha / T) or, with DST, the sparsified q-hat below.
- Transit cells compute only the sub-graph derived from the engine's architecture at every
  iteration: node j = unweighted sum of o^k(x_i) over the selected (i, k) (Eq. 21 of the
  survey restatement); no alpha gradient flows through them.
- Feature sharing: op k applied to node i is one module whose output every edge leaving
  node i reuses, computed once per cell.
- DST (differentiable sparsification, Eq. 22): per node j a learnable beta_j, threshold
  t_j = sigmoid(beta_j); q[i, k] = ReLU(p[i, k] / max_{i', k'} p[i', k'] - t_j) over the
  edges into j and the ops other than 'none'; q-hat = q / sum(q) replaces p in the engine
  cells; the selected set is {(i, k): q-hat > 0}.  A node may keep several inputs and an edge
  several ops; the NB201 genotype keeps the strongest op per edge ('none' where DST keeps
  nothing), and how often an edge keeps more than one op is recorded (a fidelity loss).
- Which cells are engines (not in the sources read): ``stage-first`` (default, the first
  cell of each stage) or ``first`` (only cell 0).  Without DST (``dst=false``) the transit
  cells hold the per-edge argmax of p, 'none' allowed.

Criteria applied to an EnTranNAS checkpoint see the engine weights (a ``weights`` override
acts on the engine cells); the transit structure follows the current architecture and
any fixed edges.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.nb201 import space
from bench.nets.cells import CONV1, POOL, SKIP, ConvBN, avg_pool_3x3
from bench.nets.supernet import Supernet


class SharedCell(nn.Module):
    """A cell whose parametric ops live on the source node (feature sharing)."""

    def __init__(self, c: int, affine: bool = False, track: bool = True):
        super().__init__()
        self.nor_conv_1x1 = nn.ModuleList(ConvBN(c, c, 1, 1, affine, track) for _ in range(3))
        self.nor_conv_3x3 = nn.ModuleList(ConvBN(c, c, 3, 1, affine, track) for _ in range(3))

    def conv(self, node: int, op: int) -> ConvBN:
        return (self.nor_conv_1x1 if op == CONV1 else self.nor_conv_3x3)[node]

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None, active: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """``weights`` (engine) or None (transit: unweighted sum); ``active[e]``: ops computed on edge e."""
        nodes = [x]
        outputs: dict[tuple[int, int], torch.Tensor] = {}
        relu: dict[int, torch.Tensor] = {}

        def op_output(i: int, op: int) -> torch.Tensor:
            if (i, op) not in outputs:
                source = nodes[i]
                if op == SKIP:
                    outputs[(i, op)] = source
                elif op == POOL:
                    outputs[(i, op)] = avg_pool_3x3(source)
                else:
                    if i not in relu:
                        relu[i] = F.relu(source)
                    outputs[(i, op)] = self.conv(i, op)(relu[i])
            return outputs[(i, op)]

        for to in (1, 2, 3):
            total = None
            for e, (j, i) in enumerate(space.EDGES):
                if j != to:
                    continue
                for op in active[e]:
                    if op == 0:
                        continue
                    y = op_output(i, op)
                    term = y if weights is None else y * weights[e, op]
                    total = term if total is None else total + term
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[3]


def dst_weights(p: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Differentiable sparsification of the engine weights p (6 x 5) with node thresholds sigmoid(beta)."""
    candidates = p.clone()
    candidates[:, 0] = 0.0  # 'none' is not a DST candidate
    out = torch.zeros_like(p)
    for node in (1, 2, 3):
        rows = [e for e, (j, _) in enumerate(space.EDGES) if j == node]
        block = candidates[rows]
        q = F.relu(block / block.max() - torch.sigmoid(beta[node - 1]))
        total = q.sum()
        out[rows] = torch.where(total > 0, q / total.clamp_min(1e-12), q)
    return out


class EnTranSupernet(Supernet):
    """NB201 supernet with engine and transit cells, feature sharing and DST."""

    cell_class = SharedCell
    stacks_weights = False  # its own logits (engine and transit cells) takes one (6 x 5) at a time

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        affine: bool = False,
        track_running_stats: bool = True,
        relaxation="softmax",
        engine_cells: str = "stage-first",
        dst: bool = True,
    ):
        super().__init__(C, N, num_classes, affine, track_running_stats, relaxation, implementation="fast")
        self.node_beta = nn.Parameter(torch.zeros(3))
        self.dst = dst
        cell_positions = [k for k, b in enumerate(self.cells) if isinstance(b, SharedCell)]
        firsts = [cell_positions[s * N] for s in range(3)]
        self.engines = set(firsts if engine_cells == "stage-first" else firsts[:1])
        self.last_selection: np.ndarray | None = None

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name not in ("alpha", "node_beta")]

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha, self.node_beta]

    def engine_weights(self) -> torch.Tensor:
        """Engine mixing weights: softmax(alpha / T) over available ops, sparsified by DST."""
        p = self.relaxation(self.alpha, self.op_mask)
        return dst_weights(p, self.node_beta) if self.dst else p

    def arch_weights(self) -> torch.Tensor:
        weights = self.engine_weights()
        if any(f is not None for f in self.fixed):
            weights = weights.clone()
            for e, op in enumerate(self.fixed):
                if op is not None:
                    weights[e] = 0.0
                    weights[e, op] = 1.0
        return weights

    def selection(self, weights: torch.Tensor) -> np.ndarray:
        """Boolean (6 x 5): the (edge, op) pairs the transit cells compute."""
        w = weights.detach().cpu().numpy()
        if self.dst:
            chosen = w > 0
            chosen[:, 0] = False
        else:
            chosen = np.zeros_like(w, dtype=bool)
            chosen[np.arange(space.NUM_EDGES), w.argmax(axis=1)] = True
        for e, op in enumerate(self.fixed):
            if op is not None:
                chosen[e] = False
                chosen[e, op] = True
        return chosen

    def logits(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, compute_mask: np.ndarray | None = None
    ) -> torch.Tensor:
        current = self.arch_weights()
        engine = current if weights is None else weights
        chosen = self.selection(current)
        self.last_selection = chosen
        transit_active = [tuple(int(o) for o in np.flatnonzero(row)) for row in chosen]
        # with DST, engine ops whose q-hat is 0 contribute neither output nor gradient: skip them too
        engine_active = transit_active if (weights is None and self.dst) else self.active_ops(compute_mask)
        h = self.stem(x.contiguous(memory_format=self.memory_format))
        for k, block in enumerate(self.cells):
            if not isinstance(block, SharedCell):
                h = block(h)
            elif k in self.engines:
                h = block(h, engine, engine_active)
            else:
                h = block(h, None, transit_active)
        return self.head(h)

    def derived_cell(self) -> tuple[space.Cell, int]:
        """NB201 genotype (strongest op per edge, 'none' if DST kept nothing) and the number of
        edges on which DST keeps more than one op."""
        with torch.no_grad():
            w = self.arch_weights().cpu().numpy()
        chosen = self.selection(torch.from_numpy(w))
        cell = tuple(
            int(np.argmax(np.where(chosen[e], w[e], -np.inf))) if chosen[e].any() else 0
            for e in range(space.NUM_EDGES)
        )
        return cell, int((chosen.sum(axis=1) > 1).sum())

    @staticmethod
    def conv_of(cell: nn.Module, edge: int, op: int) -> ConvBN:
        """Feature sharing: the conv of ``op`` lives on the edge's source node."""
        return cell.conv(space.EDGES[edge][1], op)
