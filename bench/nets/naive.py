"""The naive reference forward of the NB201 supernet, kept only as a timing baseline and a
test oracle for ``bench.nets.supernet`` (``Supernet(implementation="naive")``, whose
stem, reductions and head are the shared blocks of ``bench.nets.cells``).

It does what ``TinyNetworkDarts``/``SearchCell`` of the NB201 reference code do: every op
of every edge is computed, ``none`` as a multiplication by zero, ``avg_pool_3x3`` with
NCHW ``avg_pool2d(count_include_pad=False)``, one ReLU per conv op, and the edge output
``sum(op(x) * w)``.  It reads the same parameters as the fast forward.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.nb201 import space


def _naive_edge(edge, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    outputs = (
        x.mul(0.0),
        x,
        edge.nor_conv_1x1(F.relu(x)),
        edge.nor_conv_3x3(F.relu(x)),
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
    )
    return sum(y * w[o] for o, y in enumerate(outputs))


def naive_cell_forward(cell, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    nodes = [x]
    for to in (1, 2, 3):
        inter = [_naive_edge(cell.edges[e], nodes[i], weights[e])
                 for e, (j, i) in enumerate(space.EDGES) if j == to]
        nodes.append(sum(inter))
    return nodes[3]
