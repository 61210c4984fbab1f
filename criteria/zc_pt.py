"""Zero-cost operation scoring, ``zc-pt`` (Xiang et al., "Zero-Cost Operation Scoring in
Differentiable Architecture Search", AAAI 2023, Alg. 1; official code
visionbasicagent/zerocost_operation_score, ``nasbench201/init_projection.py: pt_project`` and
``zerocostnas/post_validate.py``).

DARTS-PT's edge-by-edge perturbation with a zero-cost proxy in place of the trained supernet's
accuracy, so on NB201 it needs no supernet training: on any checkpoint (epoch 0 = the supernet at
initialisation) and its mixing weights,

1. a proposal: the undecided edges in a seeded random order; for each, a fresh random batch, the
   proxy S (``criteria.proxies``, NASWOT by default) of the supernet and of the supernet with each
   op of the edge masked (its mixing weight set to 0, no renormalisation, the op not computed);
   the edge is fixed to the op whose removal lowers S most, i.e. argmin S(A - o), one-hot from then on;
2. ``proposals`` proposals from the same supernet (they differ in edge order and batches);
3. the distinct cells among them re-scored as stand-alone networks (``Supernet.discretize``) by
   the proxy's mean over ``rescore_batches`` random batches; the best is kept (first on ties).

Score matrix: the chosen cell's proposal, per edge, the proxy drop S(A) - S(A - o) measured when
the edge was decided (A = the supernet with the edges decided before it).  The decided op is the
row's argmax (NaN counts as -inf, the first index wins ties), so ``bench.nb201.space.select_cell(scores)``
is the chosen cell.  Masking ``none`` changes no output and no computed op, so its drop is exactly 0
and is not evaluated.  Pruned ops (``op_mask``) are NaN; an edge the supernet already fixed keeps its
op (drop 0, the rest NaN).  ``context.info`` holds every proposal (edge order, per decision the
unmasked and masked proxy values), the re-scored cells with their proxy means, the chosen one and
the forward passes of the supernet and of the stand-alone networks.

Defaults are the official NB201 pipeline's (``exp_scripts/zerocostpt_nb201_pipeline.sh``):
NASWOT ("jacob"), 10 proposals, batches of 256, 100 re-scoring batches.  Deviations:

- images: random batches (without augmentation) from the first ``valid_size`` images of the alpha
  half, where the official code draws augmented batches from the training half; a batch never
  holds more images than there are (``info.batch_size`` is the size used); the re-scoring
  batches are the same for every cell (the official loader reshuffles per cell);
- mixing weights: the checkpoint's, the same for every proposal (the official code redraws alpha
  ~ 1e-3 N(0, 1) per proposal, which at initialisation changes the weights by ~1e-3);
- masked and non-chosen ops are not computed; the official code feeds them zeros, so each masked
  conv's ReLU adds a constant all-ones matrix (times its units) to the NASWOT kernel;
- re-scoring networks inherit the supernet's weights (at epoch 0 an initialisation too, the same
  one for every cell), at the supernet's C and N; the official code builds a freshly initialised
  C=16, N=5 network per cell; with one distinct cell nothing is re-scored;
- distinct = same op tuple (the official code compares genotype strings: the same).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

import criteria.proxies as proxies
from bench.data import normalize
from bench.errors import UserError
from bench.nb201 import space
from criteria.registry import Context, register


@dataclass
class Proposal:
    """One pass over the edges: the drops at each decision and the cell they made."""

    drops: np.ndarray
    cell: tuple[int, ...]
    order: list[int]
    decisions: list[dict] = field(default_factory=list)


class Batches:
    """Random batches (no repeated image within a batch) from a pool of images, seeded."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        order = torch.randperm(len(self.labels), generator=self.generator)
        idx = order[:self.batch_size].to(self.labels.device)
        return normalize(self.images[idx]), self.labels[idx]


def _options(context: Context) -> dict:
    opts = context.options
    proxies.get(opts["proxy"])
    for key in ("proposals", "batch_size", "rescore_batches"):
        if opts[key] < 1:
            raise UserError(f"zc-pt.{key} must be at least 1, got {opts[key]}")
    if opts["proxy"] == "naswot" and opts["batch_size"] < 2:
        raise UserError("zc-pt.batch_size must be at least 2 for naswot (a kernel over pairs of images)")
    return opts


def _pool(context: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``valid_size`` images of the alpha half (all if None)."""
    if context.data is None:
        raise UserError("zc-pt needs images; none were given")
    alpha = context.data.alpha
    n = len(alpha) if context.valid_size is None else min(int(context.valid_size), len(alpha))
    if n < 2:
        raise UserError(f"zc-pt needs at least 2 images, --valid-size gives {n}")
    return alpha.images[:n], alpha.labels[:n]


def supernet_forward(net, weights: torch.Tensor) -> proxies.Forward:
    """The supernet's forward with ``weights``; ops of zero weight are not computed."""
    mask = (weights != 0).cpu().numpy() & net.op_mask.cpu().numpy()
    return lambda x: net(x, weights=weights, compute_mask=mask)


def _decided(drops: np.ndarray) -> int:
    row = np.where(np.isnan(drops), -np.inf, drops)
    return int(row.argmax())


def edge_drops(net, weights: torch.Tensor, edge: int, proxy: proxies.Proxy,
               x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, dict]:
    """S(A) - S(A - o) for every available op o of ``edge`` (NaN for pruned ops) and the raw values."""
    base = proxy(net, supernet_forward(net, weights), x, y)
    reference = base if np.isfinite(base) else 0.0  # a singular kernel: rank by -S(A - o) instead
    drops = np.full(space.NUM_OPS, np.nan)
    masked = {}
    if bool(net.op_mask[edge, 0]):
        drops[0] = 0.0  # masking 'none' changes no output
    for op in range(1, space.NUM_OPS):
        if not bool(net.op_mask[edge, op]):
            continue
        w = weights.clone()
        w[edge, op] = 0.0
        masked[op] = proxy(net, supernet_forward(net, w), x, y)
        drops[op] = reference - masked[op]
    return drops, {"edge": edge, "unmasked": base, "masked": masked}


def propose(net, weights: torch.Tensor, proxy: proxies.Proxy, batches: Batches,
            rng: np.random.Generator) -> Proposal:
    """Decide the undecided edges one at a time in a random order (zc-pt, Alg. 1)."""
    weights = weights.clone()
    drops = np.full((space.NUM_EDGES, space.NUM_OPS), np.nan)
    for e, op in enumerate(net.fixed):
        if op is not None:
            drops[e, op] = 0.0
    order = [int(e) for e in rng.permutation([e for e in range(space.NUM_EDGES) if net.fixed[e] is None])]
    proposal = Proposal(drops, (), order)
    for edge in order:
        x, y = batches.next()
        drops[edge], record = edge_drops(net, weights, edge, proxy, x, y)
        op = _decided(drops[edge])
        weights[edge] = 0.0
        weights[edge, op] = 1.0
        proposal.decisions.append({**record, "op": op})
    proposal.cell = tuple(_decided(row) for row in drops)
    return proposal


def rescore(net, cells: list[tuple[int, ...]], proxy: proxies.Proxy, batches: list) -> list[float]:
    """Mean proxy of each cell's stand-alone network (weights inherited from ``net``) over ``batches``."""
    values = []
    for cell in cells:
        standalone = net.discretize(cell, inherit=True)
        values.append(float(np.mean([proxy(standalone, standalone, x, y) for x, y in batches])))
    return values


@register("zc-pt", defaults={"proxy": "naswot", "proposals": 10, "batch_size": 256, "rescore_batches": 100},
          limits={"proxy": tuple(proxies.PROXIES), "proposals": (1, None), "batch_size": (2, None),
                  "rescore_batches": (1, None)})
def zc_pt(supernet, context: Context) -> np.ndarray:
    opts = _options(context)
    proxy = proxies.get(opts["proxy"])
    images, labels = _pool(context)
    batch_size = min(opts["batch_size"], len(labels))
    batches = Batches(images, labels, batch_size, context.seed)
    rng = np.random.default_rng(context.seed)
    weights = supernet.arch_weights().detach()
    began = time.perf_counter()
    found = [propose(supernet, weights, proxy, batches, rng) for _ in range(opts["proposals"])]
    proposed = time.perf_counter()
    cells = list(dict.fromkeys(p.cell for p in found))
    values = [float("nan")]
    if len(cells) > 1:
        values = rescore(supernet, cells, proxy, [batches.next() for _ in range(opts["rescore_batches"])])
    chosen = cells[int(np.argmax(np.where(np.isnan(values), -np.inf, values)))]
    index = next(i for i, p in enumerate(found) if p.cell == chosen)
    context.info.update(_measured(found, cells, values, index, opts, batch_size, len(labels)))
    context.info["seconds"] = {"proposals": round(proposed - began, 3),
                               "rescore": round(time.perf_counter() - proposed, 3)}
    return found[index].drops


def _measured(found: list[Proposal], cells: list, values: list[float], index: int, opts: dict,
              batch_size: int, pool: int) -> dict:
    """What zc-pt puts into ``context.info``."""
    rescored = len(cells) > 1
    return {"proxy": opts["proxy"], "batch_size": batch_size, "images_in_pool": pool,
            "proposals": [{"cell": space.to_string(p.cell), "order": p.order, "decisions": p.decisions}
                          for p in found],
            "rescored": [{"cell": space.to_string(c), "proxy_mean": v} for c, v in zip(cells, values)]
            if rescored else [],
            "chosen": space.to_string(found[index].cell), "chosen_proposal": index,
            "supernet_forwards": sum(1 + len(d["masked"]) for p in found for d in p.decisions),
            "standalone_forwards": len(cells) * opts["rescore_batches"] if rescored else 0}
