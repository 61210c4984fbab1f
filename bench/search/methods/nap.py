"""``nap``: NAP (Ding et al., Neurocomputing 2022; docs/criteria.md §8.3) [recon]: unnormalised
relaxation w = g(alpha) (gate ``sigmoid`` by default, ``identity``/``relu`` by option),
'none' excluded from the candidates (its gradient is identically zero without
normalisation: it is never computed, so nothing flows to its alpha), the weakest
surviving op of every edge pruned every ``prune_every`` epochs (or every op whose gate
falls below ``prune_threshold``, if that is > 0), final op = strongest survivor; an edge
whose strongest gate is below ``none_threshold`` becomes 'none' (discarded input).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.nb201 import space
from bench.search.methods.base import Method, PruningOptions, non_negative, prune_weakest

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


@dataclass(frozen=True)
class NAPOptions(PruningOptions):
    exclude_none: bool = False      # 'none' is not a candidate
    prune_threshold: float = 0.0    # prune ops whose gate falls below this (0 = use the schedule)
    none_threshold: float = 0.0     # an edge whose strongest gate is below this becomes 'none'

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        non_negative(cfg, "prune_every", "prune_threshold", "none_threshold")


class NAP(Method):
    name = "nap"
    options = NAPOptions

    @staticmethod
    def profile_defaults(base: SearchConfig, profile: str) -> dict:
        return {"relaxation": "sigmoid", "exclude_none": True, "prune_every": max(1, base.epochs // 4)}

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
            events = prune_weakest(net, np.nan_to_num(gates, nan=np.inf))
        return {"gates": gates.tolist(), "pruned": events}, False

    def scores(self, net: Supernet) -> np.ndarray:
        s = self.gates(net)
        s[~net.op_mask.cpu().numpy()] = np.nan
        if self.cfg.exclude_none:
            s[:, 0] = self.cfg.none_threshold  # 'none' wins an edge whose every gate is below it
        return s
