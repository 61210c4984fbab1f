"""Reference rows computed from the ground truth itself (pure functions of the table).

- the optimum: the best value of each column over all cells (NB201's "Optimal" row is
  per column too, so its cells may differ between columns);
- random search, best of n: the exact expected test accuracy of the cell that has the
  best *selection* metric among n distinct cells drawn uniformly without replacement
  (NB201's random search selects on ``cifar10-valid`` validation accuracy and reports
  test accuracy);
- the all-skip cell, where DARTS degenerates (54.30 on CIFAR-10 test).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.special import gammaln

from bench.nb201 import space

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
SELECT_METRIC = "cifar10-valid_valid"


def expected_best_of_n(target: Sequence[float], n: int, select_by: Sequence[float] | None = None) -> float:
    """E[target of the cell with the highest ``select_by`` among n cells drawn without replacement].

    With N cells sorted by ``select_by`` ascending, the best of n is the cell of rank i
    (1-based) with probability C(i-1, n-1) / C(N, n).  Cells tied on ``select_by`` share
    their group's mean target (a uniformly random tie-break).  NaN rows are left out.
    """
    target = np.asarray(target, dtype=np.float64)
    select = target if select_by is None else np.asarray(select_by, dtype=np.float64)
    keep = np.isfinite(target) & np.isfinite(select)
    target, select = target[keep], select[keep]
    total = target.size
    if not 1 <= n <= total:
        raise ValueError(f"n must be between 1 and the {total} cells with values, got {n}")
    order = np.argsort(select, kind="stable")
    target, select = target[order], select[order]
    _, group, counts = np.unique(select, return_inverse=True, return_counts=True)
    target = (np.bincount(group, weights=target) / counts)[group]
    rank = np.arange(1, total + 1, dtype=np.float64)
    log_p = np.full(total, -np.inf)
    ok = rank >= n
    log_choose = lambda a, b: gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)  # noqa: E731
    log_p[ok] = log_choose(rank[ok] - 1, n - 1) - log_choose(float(total), float(n))
    return float(np.sum(np.exp(log_p) * target))


def reference_rows(truth, metrics: Sequence[str], ns: Sequence[int] = (10, 100, 1000)) -> list[dict]:
    """Rows {label, kind, source, values: {metric: value}} for the comparison table."""
    rows = [{"label": "optimum (best cell per column)", "kind": "reference", "source": truth.source_name,
             "values": {m: float(np.nanmax(truth.metric(m))) for m in metrics}}]
    select_metric = SELECT_METRIC if SELECT_METRIC in truth.metrics else None
    for n in ns:
        values = {}
        for m in metrics:
            selector = truth.metric(select_metric) if select_metric else None
            values[m] = expected_best_of_n(truth.metric(m), n, selector)
        chosen = f"by {select_metric}" if select_metric else "by the column itself"
        rows.append({"label": f"random search, best of {n} ({chosen}), expected", "kind": "reference",
                     "source": truth.source_name, "values": values})
    skip = space.parse(ALL_SKIP)
    rows.append({"label": "all-skip cell", "kind": "reference", "source": truth.source_name,
                 "values": truth.lookup(skip, list(metrics))})
    return rows
