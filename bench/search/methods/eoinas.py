"""``eoinas``: EoiNAS (Zhou et al., arXiv 1911.10511; docs/criteria.md §8.4) transferred to NB201
[recon]: Gumbel-softmax relaxation with temperature T0 in warm-up then T0 * decay^(epoch -
warmup), skip-connect dropout, alpha frozen during warm-up, the indicator
I = softmax(alpha) + lambda * A / N, and the argmin-I op pruned on every edge at epochs
warmup + k * prune_every (pruned ops leave compute and the relaxation; Adam is re-created,
its state reset).  ``drop_none_last`` removes 'none' at the last pruning point if it is still
there.  Two readings of A and N (``eoi_variant``):

``code`` follows the official ``train_search.py`` (ZLab540/EoiNAS), the only verified
source of the indicator: only steps that train alpha count (the counters live inside
``if train_arch``), N[e, o] += 1 for the op the *weight* step's Gumbel sample favoured,
A[e, o] = the alpha batch's top-1 accuracy in percent, assigned (not summed) to the op the
*alpha* step's sample favoured; alpha's gradient is clipped to norm ``grad_clip`` (5); at
a pruning point N is reset and A kept (lines 254-255); A / N is NumPy's: an op with A = N = 0
is NaN, which ``np.argmin`` prunes first, and A > 0 with N = 0 is +inf, never pruned.
``paper`` is the reading of the paper's text: A = the sum of alpha-batch accuracies
(fractions) over the alpha steps whose sample favoured the op, N = their number, both reset
at pruning, no alpha clipping, A / N = 0 where N = 0.  ``code`` should be the method's
default (``EoiNAS.profile_defaults``): the paper does not say which sample N counts,
how A aggregates or what A's unit is, and the code is what produced its results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from bench.errors import UserError
from bench.nb201 import space
from bench.search.methods.base import Method, PruningOptions, non_negative, one_of, prune_weakest

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


def _softmax_rows(net: Supernet) -> np.ndarray:
    """softmax(alpha) over the available ops of each edge (6 x 5, float64)."""
    with torch.no_grad():
        logits = net.alpha.detach().double().masked_fill(~net.op_mask, float("-inf"))
        return torch.softmax(logits, -1).cpu().numpy()


@dataclass(frozen=True)
class EoiNASOptions(PruningOptions):
    warmup_epochs: int = 0          # weight-only epochs before alpha trains
    gumbel_temperature_start: float = 5.0  # Gumbel-softmax temperature in warm-up
    gumbel_temperature_decay: float = 0.965  # after warm-up: start * decay^(epoch - warmup)
    skip_dropout: float = 0.0       # dropout on skip_connect outputs (schedule in EoiNAS.start_epoch)
    lam: float = 0.5                # indicator weight of the accuracy term
    eoi_variant: str = "paper"      # paper (accumulated mean accuracy) or code (official code)
    drop_none_last: bool = True     # remove 'none' at the last pruning point if still present

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        non_negative(cfg, "prune_every", "warmup_epochs", "skip_dropout", "lam")
        one_of(cfg, "eoi_variant", ("paper", "code"))
        if cfg.warmup_epochs >= cfg.epochs and cfg.warmup_epochs > 0:
            raise UserError(f"warmup_epochs ({cfg.warmup_epochs}) must be smaller than epochs ({cfg.epochs})")
        if not cfg.gumbel_temperature_start > 0:
            raise UserError(f"gumbel_temperature_start ({cfg.gumbel_temperature_start}) must be positive")
        if not 0 < cfg.gumbel_temperature_decay <= 1:
            raise UserError(f"gumbel_temperature_decay ({cfg.gumbel_temperature_decay}) must lie in (0, 1]")
        if cfg.skip_dropout >= 1:
            raise UserError(f"skip_dropout ({cfg.skip_dropout}) must be below 1")


class EoiNAS(Method):
    name = "eoinas"
    options = EoiNASOptions

    @staticmethod
    def profile_defaults(base: SearchConfig, profile: str) -> dict:
        """docs/criteria.md §8.4: 100 epochs at paper size (warm-up 20, prune every 20), SGD cosine to
        0, wd 3e-4, Adam 6e-4, the official code's indicator; smaller profiles keep the proportions."""
        epochs = {"paper": 100, "darts-pt": 100}.get(profile, max(base.epochs, 5))
        warmup = epochs // 5
        return {
            "relaxation": "gumbel",
            "epochs": epochs,
            "warmup_epochs": warmup,
            "prune_every": max(1, (epochs - warmup) // 4),
            "skip_dropout": 0.1,
            "a_lr": 6e-4,
            "w_lr_min": 0.0,
            "w_weight_decay": 3e-4,
            "w_nesterov": False,
            "eoi_variant": "code",
        }

    def __init__(self, cfg: SearchConfig, seed: int = 0):
        super().__init__(cfg, seed)
        self.acc = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        self.count = np.zeros((space.NUM_EDGES, space.NUM_OPS))
        self.events: list[tuple[int, int, int]] = []
        self._decided: np.ndarray | None = None  # the indicator a pruning just used (see ``scores``)
        self._training_alpha = False
        self._clipped: torch.Tensor | None = None

    def prune_epochs(self) -> list[int]:
        """1-based epochs after which one op per edge is pruned (4 stages on NB201)."""
        return [self.cfg.warmup_epochs + k * self.cfg.prune_every for k in range(1, space.NUM_OPS)]

    def alpha_trains(self, epoch: int) -> bool:
        return epoch >= self.cfg.warmup_epochs and not self.cfg.freeze_alpha

    def temperature(self, epoch: int) -> float:
        """Gumbel-softmax temperature of (0-based) ``epoch``: T0 in warm-up, then
        T0 * decay^(epoch - warmup)."""
        return self.cfg.gumbel_temperature_start * self.cfg.gumbel_temperature_decay ** max(
            epoch - self.cfg.warmup_epochs, 0
        )

    def start_epoch(self, net: Supernet, epoch: int) -> dict:
        temperature = self.temperature(epoch)
        net.relaxation.temperature = temperature
        generator = torch.Generator(device=net.alpha.device)
        generator.manual_seed(self.seed * 1_000_003 + epoch + 424242)
        net.relaxation.generator = generator
        total = self.cfg.epochs
        if epoch < self.cfg.warmup_epochs:
            p = self.cfg.skip_dropout * (total - epoch - 1) / total
        else:
            p = self.cfg.skip_dropout * math.exp(-0.2 * (epoch - self.cfg.warmup_epochs))
        net.skip_dropout = p
        self._training_alpha = self.alpha_trains(epoch)
        if self.cfg.eoi_variant == "code" and self.cfg.grad_clip > 0:
            self._clip_alpha_gradient(net)
        return {"temperature": temperature, "skip_dropout": p, "alpha_trains": self._training_alpha}

    def _clip_alpha_gradient(self, net: Supernet) -> None:
        """Alpha's gradient scaled to norm <= grad_clip wherever it is computed, as the official
        ``clip_grad_norm_(arch_parameters(), grad_clip)`` before ``optimizer_a.step()`` (same formula:
        factor min(1, max_norm / (norm + 1e-6))).  A hook on alpha, registered once per supernet."""
        if self._clipped is net.alpha:
            return
        max_norm = float(self.cfg.grad_clip)
        net.alpha.register_hook(lambda g: g * torch.clamp(max_norm / (g.norm() + 1e-6), max=1.0))
        self._clipped = net.alpha

    def restore(self, net: Supernet, epoch: int, record: dict | None) -> None:
        """The temperature the checkpoint was trained with: the epoch record's, else the schedule's."""
        recorded = (record or {}).get("method", {}).get("temperature")
        net.relaxation.temperature = (
            float(recorded) if recorded is not None else self.temperature(max(epoch - 1, 0))
        )

    def _favoured(self, net: Supernet) -> np.ndarray:
        return net.relaxation.last_sample.argmax(dim=1).cpu().numpy()

    def after_weight_step(self, net: Supernet) -> None:
        if self.cfg.eoi_variant == "code" and self._training_alpha:
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

    def accuracy_term(self) -> np.ndarray:
        """A / N: the code's NumPy division (0/0 = NaN, A/0 = +inf) or the paper reading's (0 where N = 0)."""
        if self.cfg.eoi_variant == "code":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.true_divide(self.acc, self.count)
        return np.divide(self.acc, self.count, out=np.zeros_like(self.acc), where=self.count > 0)

    def indicator(self, net: Supernet) -> np.ndarray:
        """softmax(alpha) + lambda * A / N; NaN for pruned ops (and, ``code``, for A = N = 0)."""
        ind = _softmax_rows(net) + self.cfg.lam * self.accuracy_term()
        ind[~net.op_mask.cpu().numpy()] = np.nan
        return ind

    def strength(self, net: Supernet) -> np.ndarray:
        """What pruning minimises: the indicator, with the official ``np.argmin`` order: an available
        op whose indicator is NaN (A = N = 0) first (-inf), pruned ops never (+inf)."""
        ind = self.indicator(net)
        available = net.op_mask.cpu().numpy()
        return np.where(available, np.nan_to_num(ind, nan=-np.inf, posinf=np.inf), np.inf)

    def end_epoch(self, net: Supernet, epoch: int) -> tuple[dict, bool]:
        net.relaxation.generator = None  # logged and checkpointed: the deterministic softmax(alpha / T)
        ind = self.indicator(net)
        self._decided = None
        record = {
            "indicator": ind.tolist(),
            "accuracy": self.acc.tolist(),
            "samples": self.count.tolist(),
            "pruned": [],
        }
        if epoch + 1 in self.prune_epochs():
            last = epoch + 1 == self.prune_epochs()[-1]
            events = prune_weakest(net, self.strength(net), drop_none_last=last and self.cfg.drop_none_last)
            self.events += [(epoch + 1, e, o) for e, o in events]
            record["pruned"] = events
            self._decided = ind
            self.count[:] = 0
            if self.cfg.eoi_variant != "code":  # the code keeps A across a pruning point
                self.acc[:] = 0
            return record, True
        return record, False

    def scores(self, net: Supernet) -> np.ndarray:
        """The indicator for the method's own cell: an op with A = N = 0 (``code``) ranks below the
        edge's other ops; an edge with no op counted yet (warm-up) is ranked by softmax(alpha).
        Right after a pruning it is the indicator that pruning used, over the surviving ops: the
        reset of N there leaves A / N undefined (``code``: +inf wherever A > 0, so every such op
        would tie) or zero (``paper``) until samples come in again."""
        available = net.op_mask.cpu().numpy()
        ind = self.indicator(net) if self._decided is None else np.array(self._decided, dtype=np.float64)
        ind[~available] = np.nan
        undefined = np.isnan(ind) & available
        for e in range(space.NUM_EDGES):
            if undefined[e].any():
                ops = available[e]
                ind[e, undefined[e]] = -np.inf
                if undefined[e][ops].all():
                    ind[e, ops] = _softmax_rows(net)[e, ops]
        return ind

    def state_dict(self) -> dict:
        return {"acc": self.acc.tolist(), "count": self.count.tolist(), "events": self.events}

    def load_state_dict(self, state: dict) -> None:
        self.acc = np.array(state["acc"])
        self.count = np.array(state["count"])
        self.events = [tuple(e) for e in state["events"]]
