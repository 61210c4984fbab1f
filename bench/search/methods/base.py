"""Search methods change DARTS training through hooks the search loop (``bench.search.loop``)
calls; this module holds the hooks' defaults (``Method``: plain DARTS, ``darts``, V1/V2 by
``order``), the options dataclass every method declares beside its hooks (its fields join
``bench.search.config.SearchConfig``) and the pruning shared by NAP and EoiNAS.  One module per
method; the registry is ``bench.search.methods``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import UserError

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


def non_negative(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value >= 0:  # catches NaN too
            raise UserError(f"Config field {name!r} = {value!r} must be a number >= 0")


def one_of(cfg, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(cfg, name) not in allowed:
        raise UserError(f"Config field {name!r} = {getattr(cfg, name)!r} must be one of {', '.join(allowed)}")


@dataclass(frozen=True)
class DartsOptions:
    """Plain DARTS has no knobs of its own (``bench.search.config.TrainingConfig`` holds the recipe)."""

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        pass


class Method:
    """Plain DARTS: every hook is a no-op."""

    name = "darts"
    options = DartsOptions
    """The dataclass of the method's own knobs (its fields join ``bench.search.config.SearchConfig``)."""
    cell_criterion: str | None = None
    """The selection criterion whose cell is this method's result, when training derives none itself."""

    @staticmethod
    def profile_defaults(base: SearchConfig, profile: str) -> dict:
        """Field values the method sets on top of profile ``profile`` (``base``)."""
        return {}

    @staticmethod
    def check_new_run(cfg: SearchConfig) -> None:
        """Refuse (``UserError``) a config that is valid but would not run the method as its paper
        describes; applied when a config is resolved for a new run, not to stored runs (records of an
        earlier rule still load and report)."""

    def __init__(self, cfg: SearchConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    def setup(self, net: Supernet) -> None:
        """Called once on a fresh supernet (not on resume)."""

    def alpha_trains(self, epoch: int) -> bool:
        return not self.cfg.freeze_alpha

    def start_epoch(self, net: Supernet, epoch: int) -> dict:
        return {}

    def frozen_alpha_batch(self, net: Supernet, x: torch.Tensor,
                           y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and number correct on the alpha batch of a step in which alpha does not train.

        The official loops make no forward on it (DARTS-PT ``blank``, EoiNAS warm-up); the
        harness measures it with BatchNorm in eval mode and without Gumbel noise, so that the
        measurement updates no running statistic and draws from no random stream: the weights
        train as in the official loop.  (A train-mode forward would fold the alpha half into
        the BatchNorm running statistics.)"""
        relaxation = net.relaxation
        generator, last = getattr(relaxation, "generator", None), getattr(relaxation, "last_sample", None)
        was_training = net.training
        try:
            if generator is not None:
                relaxation.generator = None
            net.eval()
            with torch.no_grad():
                logits = net(x)
        finally:
            net.train(was_training)
            if generator is not None:
                relaxation.generator = generator
                relaxation.last_sample = last
        return F.cross_entropy(logits, y), (logits.argmax(1) == y).sum()

    def restore(self, net: Supernet, epoch: int, record: dict | None) -> None:
        """Put back on a supernet rebuilt from the checkpoint of (1-based) ``epoch`` the training
        state that lives outside the checkpoint (``record``: that epoch's record; None for the
        initialisation, epoch 0).  Called by ``bench.runs.checkpoints.load_supernet``."""

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


def prune_weakest(net: Supernet, strength: np.ndarray, protect_none_until_last: bool = False,
                  drop_none_last: bool = False) -> list[tuple[int, int]]:
    """Remove the lowest-strength available op of every edge that has more than one; returns events."""
    events = []
    mask = net.op_mask.cpu().numpy()
    for e in range(len(mask)):
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


@dataclass(frozen=True)
class PruningOptions:
    prune_every: int = 0            # NAP / EoiNAS: epochs between pruning points (0 = never)

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        non_negative(cfg, "prune_every")
