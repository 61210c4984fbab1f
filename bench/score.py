"""Scoring: what a criterion produced, held against a ground-truth table.

The one stage between criteria and statistics: an op-score matrix (6 x 5) and a ``GroundTruth``
give the derived cell, its benchmark accuracies, its count of parameter-free ops and the rank
rows of protocols 1-3 (``bench.stats.rank_report``); protocol 4's measured accuracies give its
row.  Pure functions: nothing is read from or written to a run folder.  ``select`` and ``search``
store only what was measured; ``show``, the reports and the notebooks score at read time against
whatever table they are given, so another table (the official ``.pth`` converted, a NATS
directory) or another metric needs no rerun.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from bench import stats
from bench.nb201 import space
from bench.nb201.metrics import DEFAULT_METRIC, HEADLINE_METRICS, REPORTED_METRICS, present

SUPERNET = "_supernet"
"""Criterion name of protocol-4 records (a seeded sample of cells evaluated inside a checkpoint)."""

HESSIAN = "_hessian"
"""Criterion name of collapse-indicator records (dominant Hessian eigenvalue w.r.t. alpha): no scores."""


def cell_facts(cell: str | Sequence[int], truth=None) -> dict:
    """The derived cell as a string, its parameter-free op and skip-connection counts and, with
    ``truth``, its benchmark index and reported accuracies."""
    cell = space.parse(cell) if isinstance(cell, str) else space.validate_cell(cell)
    out: dict = {"cell": space.to_string(cell), "parameter_free_ops": int(space.count_parameter_free(cell)),
                 "skip_connections": int(space.count_skip_connections(cell))}
    if truth is not None:
        out["cell_index"] = truth.benchmark_index(cell)
        out["accuracies"] = truth.lookup(cell, present(REPORTED_METRICS, truth))
    return out


def derived_cell(scores: np.ndarray, allow_none: bool = True) -> tuple[int, ...]:
    """The cell a criterion's scores select (per edge the best available op)."""
    return space.select_cell(np.asarray(scores, dtype=np.float64), allow_none=allow_none)


def score_matrix(scores: np.ndarray, truth=None, allow_none: bool = True,
                 cell: Sequence[int] | None = None) -> dict:
    """Derived cell (``cell`` when the criterion decided it by itself), its facts and, with
    ``truth``, the rank rows of protocols 1-3 on the headline metrics."""
    scores = np.asarray(scores, dtype=np.float64)
    chosen = derived_cell(scores, allow_none) if cell is None else space.validate_cell(cell)
    out = cell_facts(chosen, truth)
    if truth is not None:
        truths = {m: truth.metric(m) for m in present(HEADLINE_METRICS, truth)}
        out["rank"] = stats.rank_report(scores, truths, derived=chosen) if truths else []
    return out


def arch_tau(scores: np.ndarray, truth) -> dict:
    """Protocol 1 on the default metric: one Kendall tau / Spearman pair for a search epoch."""
    metric = DEFAULT_METRIC if DEFAULT_METRIC in truth.metrics else truth.metric_names[0]
    scores = np.asarray(scores, dtype=np.float64)
    row = stats.arch_level(scores, truth.metric(metric), metric, subsets=("all",))[0]
    return {"metric": metric, "kendall_tau": row["kendall_tau"], "spearman": row["spearman"]}


def supernet_rows(sample: Sequence[int], measured: Sequence[float], truth) -> list[dict]:
    """Protocol 4: accuracies measured inside the supernet vs the benchmark's, per headline metric."""
    codes = np.asarray(sample, dtype=int)
    return [stats.supernet_level(measured, truth.metric(m)[codes], m)
            for m in present(HEADLINE_METRICS, truth)]


def score_selection(record: dict, truth=None) -> dict:
    """A ``selections.jsonl`` record with its scored fields computed now against ``truth``.

    Records of every format load: fields a record stored at selection time are replaced by
    the ones computed here (the same numbers when ``truth`` is the table it was made with)."""
    from bench.opscores import from_jsonable

    out = {k: v for k, v in record.items()
           if k not in ("accuracies", "cell_index", "rank", "parameter_free_ops", "skip_connections")}
    if record.get("criterion") == HESSIAN:
        return out
    if record.get("criterion") == SUPERNET:
        out["rank"] = supernet_rows(record["sample"], record["measured"], truth) if truth is not None else []
        return out
    scores = from_jsonable(record["scores"])
    allow_none = bool(record.get("allow_none", True))
    # the cell the criterion chose (a projection decides it edge by edge); derived from the scores if absent
    cell = space.parse(record["cell"]) if record.get("cell") else None
    out.update(score_matrix(scores, truth, allow_none, cell=cell))
    return out


def score_cell(cell: str | None, truth=None) -> dict:
    """The facts of a cell named by a record (a search epoch's cell); empty for no cell."""
    return cell_facts(cell, truth) if cell else {}


def magnitude_scores(alpha, op_mask=None) -> np.ndarray:
    """DARTS magnitude scores of stored architecture parameters: log softmax(alpha) over the
    available ops, pruned ops NaN (the computation of ``criteria.magnitude``, in float64)."""
    import torch

    logits = torch.tensor(np.asarray(alpha, dtype=np.float32), dtype=torch.float64)
    mask = (torch.ones_like(logits, dtype=torch.bool) if op_mask is None
            else torch.tensor(op_mask, dtype=torch.bool))
    scores = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1).numpy()
    scores[~mask.numpy()] = np.nan
    return scores


def score_epoch(record: dict, truth=None) -> dict:
    """A search epoch's magnitude cell scored now: the cell (as stored, else from alpha), its facts
    and, with ``truth``, the arch-level tau of its magnitude scores (``tau_arch``)."""
    out: dict = {}
    alpha = record.get("alpha")
    scores = magnitude_scores(alpha, record.get("op_mask")) if alpha is not None else None
    cell = record.get("cell") or (space.to_string(derived_cell(scores)) if scores is not None else None)
    if cell:
        out.update(cell_facts(cell, truth))
    if truth is not None and scores is not None:
        out["tau_arch"] = arch_tau(scores, truth)
    return out
