"""Names, order and filters of the report frames (``bench.report.aggregate``), shared by every
table and figure: the criterion labels, the order of lines, finished runs, final epochs, the
accuracy columns and a cell's stand-alone cost columns."""
from __future__ import annotations

from functools import lru_cache

import pandas as pd

from bench import score
from bench.nb201.metrics import TABLE_ORDER

SEARCH = "search"
"""Criterion name of the cell that the search method derives by itself every epoch."""

SUPERNET = score.SUPERNET
CRITERIA_ORDER = (SEARCH, "magnitude", "darts-pt", "darts-pt-oneshot", "darts-pt-proj", "ostr", "eoinas",
                  "random", SUPERNET)
"""The order of criteria in every table and figure legend."""
SHOWN = {SEARCH: "own cell", SUPERNET: "cells in the supernet"}


def shown(criterion: str) -> str:
    """A criterion's name as the reports print it."""
    return SHOWN.get(criterion, criterion)


def line_order(key: tuple[str, str]) -> tuple:
    """Sort key of a (method, criterion) pair: by method, then ``CRITERIA_ORDER``, then by name."""
    method, criterion = key
    rank = CRITERIA_ORDER.index(criterion) if criterion in CRITERIA_ORDER else len(CRITERIA_ORDER)
    return method, rank, criterion


def ordered_lines(frame: pd.DataFrame) -> list[str]:
    """The ``line`` labels of a frame in report order: by net, then criterion, then label."""
    if frame.empty:
        return []
    firsts = frame.drop_duplicates("line")
    keys = {r["line"]: (line_order((r["method"], r["criterion"]))[:1] + (r["net"],)
                        + line_order((r["method"], r["criterion"]))[1:] + (r["line"],))
            for _, r in firsts.iterrows()}
    return sorted(keys, key=keys.get)


def complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of finished runs only."""
    return frame[frame["state"] == "done"] if not frame.empty else frame


def at_final_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows at each run's last search epoch."""
    return frame[frame["epoch"] == frame["final_epoch"]] if not frame.empty else frame


def accuracy_columns(frame: pd.DataFrame) -> list[str]:
    """The ``acc:`` columns present, in ``bench.nb201.metrics.TABLE_ORDER``, then the rest."""
    present = [c for c in frame.columns if c.startswith("acc:")]
    rank = {m: i for i, m in enumerate(TABLE_ORDER)}
    return sorted(present, key=lambda c: (rank.get(c[4:], len(rank)), c))


@lru_cache(maxsize=None)
def cell_costs(cell: str) -> dict:
    """Parameters and FLOPs (M) of a cell's stand-alone network (``bench.nets.cellcost``), or {}."""
    try:
        from bench.nets.cellcost import cell_cost
    except ImportError:
        return {}
    return cell_cost(cell)
