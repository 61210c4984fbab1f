"""Search methods that change DARTS training, as hooks the search loop calls.

- ``darts``: plain DARTS (V1/V2 by ``order``).
- ``darts-fix-alpha``: DARTS-PT's "blank" supernet, alpha frozen at its initialisation
  (Wang et al., ICLR 2021, Sec. 5; criteria-spec §3.2); project it with ``darts-pt-proj``.
- ``nap``: NAP (Ding et al., Neurocomputing 2022; criteria-spec §6) [recon]: unnormalised
  relaxation w = g(alpha) (gate ``sigmoid`` by default, ``identity``/``relu`` by option),
  'none' excluded from the candidates (its gradient is identically zero without
  normalisation: it is never computed, so nothing flows to its alpha), the weakest
  surviving op of every edge pruned every ``prune_every`` epochs (or every op whose gate
  falls below ``prune_threshold``, if that is > 0), final op = strongest survivor; an edge
  whose strongest gate is below ``none_threshold`` becomes 'none' (discarded input).
- ``eoinas``: EoiNAS (Zhou et al., arXiv 1911.10511; criteria-spec §5) transferred to NB201
  [recon]: Gumbel-softmax relaxation with tau = tau0 in warm-up then tau0 * decay^(epoch -
  warmup), skip-connect dropout, alpha frozen during warm-up, the indicator
  I = softmax(alpha) + lambda * A / N accumulated during training (``eoi_paper``: A = sum of
  alpha-batch accuracies (fractions) over the alpha steps whose Gumbel sample favoured the
  op, N = their number; ``eoi_code``: A = the latest such accuracy in percent, N = how often
  the weight step's sample favoured the op), and the argmin-I op pruned on every edge at
  epochs warmup + k * prune_every (pruned ops leave compute and the relaxation; Adam is
  re-created, its state reset; A and N are reset).  ``drop_none_last`` removes 'none' at the
  last pruning point if it is still there.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from bench import space
from bench.config import SearchConfig
from bench.errors import UserError
from bench.supernet import Supernet


class Method:
    """Plain DARTS: every hook is a no-op."""

    name = "darts"
    cell_criterion: str | None = None
    """The selection criterion whose cell is this method's result, when training derives none itself."""

    def __init__(self, cfg: SearchConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    def setup(self, net: Supernet) -> None:
        """Called once on a fresh supernet (not on resume)."""

    def alpha_trains(self, epoch: int) -> bool:
        return not self.cfg.freeze_alpha

    def start_epoch(self, net: Supernet, epoch: int) -> dict:
        return {}

    def after_weight_step(self, net: Supernet) -> None:
        pass

    def after_alpha_step(self, net: Supernet, correct: torch.Tensor, n: int) -> None:
        pass

    def end_epoch(self, net: Supernet, epoch: int) -> tuple[dict, bool]:
        """Record fields for the epoch, and whether the alpha optimiser must be re-created."""
        return {}, False

    def scores(self, net: Supernet) -> np.ndarray | None:
        """The method's own op scores for its derived cell (None: the magnitude rule)."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class FixAlpha(Method):
    name = "darts-fix-alpha"
    cell_criterion = "darts-pt-proj"  # frozen alpha says nothing: the paper's cell is the projection

    def alpha_trains(self, epoch: int) -> bool:
        return False


def _prune_weakest(net: Supernet, strength: np.ndarray, protect_none_until_last: bool = False,
                   drop_none_last: bool = False) -> list[tuple[int, int]]:
    """Remove the lowest-strength available op of every edge that has more than one; returns events."""
    events = []
    mask = net.op_mask.cpu().numpy()
    for e in range(space.NUM_EDGES):
        available = np.flatnonzero(mask[e])
        if len(available) <= 1:
            continue
        if drop_none_last and len(available) == 2 and mask[e, 0]:
            op = 0
        else:
            candidates = available
            if protect_none_until_last and mask[e, 0] and len(available) > 2:
                candidates = available[available != 0]
            op = int(candidates[np.argmin(strength[e, candidates])])
        net.prune(e, op)
        events.append((e, op))
    return events


class NAP(Method):
    name = "nap"

    def setup(self, net: Supernet) -> None:
        if self.cfg.exclude_none:
            for e in range(space.NUM_EDGES):
                net.prune(e, 0)

    def gates(self, net: Supernet) -> np.ndarray:
        with torch.no_grad():
            return net.relaxation(net.alpha, net.op_mask).double().cpu().numpy()

    def end_epoch(self, net: Supernet, epoch: int) -> tuple[dict, bool]:
        gates = self.gates(net)
        gates[~net.op_mask.cpu().numpy()] = np.nan
        events: list[tuple[int, int]] = []
        if self.cfg.prune_threshold > 0:
            mask = net.op_mask.cpu().numpy()
            for e in range(space.NUM_EDGES):
                for o in np.argsort(gates[e]):
                    if mask[e, o] and gates[e, o] < self.cfg.prune_threshold and net.op_mask[e].sum() > 1:
                        net.prune(e, int(o))
                        events.append((e, int(o)))
        elif self.cfg.prune_every > 0 and (epoch + 1) % self.cfg.prune_every == 0:
            events = _prune_weakest(net, np.nan_to_num(gates, nan=np.inf))
        return {"gates": gates.tolist(), "pruned": events}, False

    def scores(self, net: Supernet) -> np.ndarray:
        s = self.gates(net)
        s[~net.op_mask.cpu().numpy()] = np.nan
        if self.cfg.exclude_none:
            s[:, 0] = self.cfg.none_threshold  # 'none' wins an edge whose every gate is below it
        return s


class EoiNAS(Method):
    name = "eoinas"

    def __init__(self, cfg: SearchConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.acc = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        self.count = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        self.events: list[tuple[int, int, int]] = []

    def prune_epochs(self) -> list[int]:
        """1-based epochs after which one op per edge is pruned (4 stages on NB201)."""
        return [self.cfg.warmup_epochs + k * self.cfg.prune_every for k in range(1, space.NUM_OPS)]

    def alpha_trains(self, epoch: int) -> bool:
        return epoch >= self.cfg.warmup_epochs and not self.cfg.freeze_alpha

    def start_epoch(self, net: Supernet, epoch: int) -> dict:
        warm = max(epoch - self.cfg.warmup_epochs, 0)
        tau = self.cfg.tau_start * self.cfg.tau_decay ** warm
        net.relaxation.tau = tau
        generator = torch.Generator(device=net.alpha.device)
        generator.manual_seed(self.seed * 1_000_003 + epoch + 424242)
        net.relaxation.generator = generator
        total = self.cfg.epochs
        if epoch < self.cfg.warmup_epochs:
            p = self.cfg.skip_dropout * (total - epoch - 1) / total
        else:
            p = self.cfg.skip_dropout * math.exp(-0.2 * (epoch - self.cfg.warmup_epochs))
        net.skip_dropout = p
        return {"temperature": tau, "skip_dropout": p, "alpha_trains": self.alpha_trains(epoch)}

    def _favoured(self, net: Supernet) -> np.ndarray:
        return net.relaxation.last_sample.argmax(dim=1).cpu().numpy()

    def after_weight_step(self, net: Supernet) -> None:
        if self.cfg.eoi_variant == "code":
            self.count[np.arange(space.NUM_EDGES), self._favoured(net)] += 1

    def after_alpha_step(self, net: Supernet, correct: torch.Tensor, n: int) -> None:
        favoured = self._favoured(net)
        rows = np.arange(space.NUM_EDGES)
        accuracy = float(correct) / n
        if self.cfg.eoi_variant == "code":
            self.acc[rows, favoured] = 100.0 * accuracy
        else:
            self.acc[rows, favoured] += accuracy
            self.count[rows, favoured] += 1

    def indicator(self, net: Supernet) -> np.ndarray:
        with torch.no_grad():
            probs = torch.softmax(net.alpha.detach().double().masked_fill(~net.op_mask, float("-inf")), -1)
        term = np.divide(self.acc, self.count, out=np.zeros_like(self.acc), where=self.count > 0)
        ind = probs.cpu().numpy() + self.cfg.lam * term
        ind[~net.op_mask.cpu().numpy()] = np.nan
        return ind

    def end_epoch(self, net: Supernet, epoch: int) -> tuple[dict, bool]:
        net.relaxation.generator = None  # what is logged and checkpointed is the deterministic softmax(alpha / tau)
        ind = self.indicator(net)
        record = {"indicator": ind.tolist(), "pruned": []}
        if epoch + 1 in self.prune_epochs():
            last = epoch + 1 == self.prune_epochs()[-1]
            events = _prune_weakest(net, np.nan_to_num(ind, nan=np.inf), drop_none_last=last and self.cfg.drop_none_last)
            self.events += [(epoch + 1, e, o) for e, o in events]
            record["pruned"] = events
            self.acc[:] = 0
            self.count[:] = 0
            return record, True
        return record, False

    def scores(self, net: Supernet) -> np.ndarray:
        return self.indicator(net)

    def state_dict(self) -> dict:
        return {"acc": self.acc.tolist(), "count": self.count.tolist(), "events": self.events}

    def load_state_dict(self, state: dict) -> None:
        self.acc = np.array(state["acc"])
        self.count = np.array(state["count"])
        self.events = [tuple(e) for e in state["events"]]


class EnTranNAS(Method):
    """Engine/transit cells with DST (bench.entrannas); records how often DST keeps several
    ops on one edge, per training step and at the end of each epoch."""

    name = "entrannas"

    def __init__(self, cfg: SearchConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.steps = 0
        self.multi_op_steps = 0

    def start_epoch(self, net: Supernet, epoch: int) -> dict:
        self.steps = self.multi_op_steps = 0
        return {}

    def after_weight_step(self, net: Supernet) -> None:
        chosen = net.last_selection
        self.steps += 1
        self.multi_op_steps += int((chosen.sum(axis=1) > 1).any())

    def end_epoch(self, net: Supernet, epoch: int) -> tuple[dict, bool]:
        cell, multi = net.derived_cell()
        with torch.no_grad():
            weights = net.arch_weights().cpu().tolist()
            thresholds = torch.sigmoid(net.node_beta).cpu().tolist()
        return {"engine_weights": weights, "thresholds": thresholds, "multi_op_edges": multi,
                "multi_op_step_fraction": self.multi_op_steps / max(self.steps, 1),
                "derived": space.to_string(cell)}, False

    def scores(self, net: Supernet) -> np.ndarray:
        cell, _ = net.derived_cell()
        s = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        s[np.arange(space.NUM_EDGES), cell] = 1.0
        return s


METHODS = {m.name: m for m in (Method, FixAlpha, NAP, EoiNAS, EnTranNAS)}


def get(cfg: SearchConfig, seed: int = 0) -> Method:
    if cfg.method not in METHODS:
        raise UserError(f"Unknown method {cfg.method!r}; available: {', '.join(METHODS)}")
    return METHODS[cfg.method](cfg, seed)
