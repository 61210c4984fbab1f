"""EnTranNAS (Tian et al., CVPR 2021) [recon]: engine cells mix ops with softmax(alpha / tau) sparsified
by DST (learned node thresholds); transit cells compute only the derived sub-graph
(``bench.nets.entrannas.EnTranSupernet``, built by ``bench.runs.checkpoints.build_supernet``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.errors import UserError
from bench.nb201 import space
from bench.search.methods.base import Method, one_of

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


@dataclass(frozen=True)
class EnTranNASOptions:
    engine_cells: str = "stage-first"  # stage-first (first cell of each stage) or first (cell 0 only);
    # at N=1 every cell is the first of its stage, so the method's default there is first
    dst: bool = True  # differentiable sparsification with node thresholds
    engine_temperature: float = 1.0  # engine softmax temperature

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        one_of(cfg, "engine_cells", ("stage-first", "first"))
        if not cfg.engine_temperature > 0:
            raise UserError(f"engine_temperature ({cfg.engine_temperature}) must be positive")
        if cfg.method == "entrannas" and cfg.implementation != "fast":
            raise UserError("method entrannas has its own supernet; use implementation=fast")


class EnTranNAS(Method):
    """Engine/transit cells with DST (bench.nets.entrannas); records how often DST keeps several
    ops on one edge, per training step and at the end of each epoch."""

    name = "entrannas"
    options = EnTranNASOptions

    @staticmethod
    def profile_defaults(base: SearchConfig, profile: str) -> dict:
        """Engine cells: the first of each stage; at N=1 (each stage one cell) cell 0 only, so that the
        other two cells are transit cells."""
        return {"relaxation": "softmax", "engine_cells": "first" if base.N == 1 else "stage-first"}

    @staticmethod
    def check_new_run(cfg: SearchConfig) -> None:
        if cfg.engine_cells == "stage-first" and cfg.N == 1:
            raise UserError("engine_cells=stage-first with N=1 makes every cell an engine cell (each stage "
                            "has one cell), so no transit cell exists; set engine_cells=first (cell 0 the "
                            "engine, the other two transit)")

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
        return {
            "engine_weights": weights,
            "thresholds": thresholds,
            "multi_op_edges": multi,
            "multi_op_step_fraction": self.multi_op_steps / max(self.steps, 1),
            "derived": space.to_string(cell),
        }, False

    def scores(self, net: Supernet) -> np.ndarray:
        cell, _ = net.derived_cell()
        s = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        s[np.arange(space.NUM_EDGES), cell] = 1.0
        return s
