"""``darts-fix-alpha``: DARTS-PT's "blank" supernet (Wang et al., ICLR 2021, Sec. 5;
``exp_scripts/blank-201.sh``): alpha frozen at its initialisation; the official step fetches an
alpha batch but makes no forward on it (``architect_ig.Architect.step`` returns at once for
``blank``).  Its cell is its ``darts-pt-proj`` projection; on the ``darts-pt`` profile it is the
published recipe (100 epochs, wd 3e-4, no nesterov).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.search.methods.base import Method

if TYPE_CHECKING:
    from bench.search.config import SearchConfig


@dataclass(frozen=True)
class FixAlphaOptions:
    freeze_alpha: bool = False      # DARTS-PT "fix alpha" (blank) supernet: alpha never trains

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        pass


class FixAlpha(Method):
    name = "darts-fix-alpha"
    options = FixAlphaOptions
    cell_criterion = "darts-pt-proj"  # frozen alpha says nothing: the paper's cell is the projection

    @staticmethod
    def profile_defaults(base: SearchConfig, profile: str) -> dict:
        return {"freeze_alpha": True}

    def alpha_trains(self, epoch: int) -> bool:
        return False
