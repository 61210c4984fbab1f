"""Scoring at read time, timed: seconds per record of the plain per-call formulas and of ``bench.stats``.

A selection record costs protocols 1-3 on the headline metrics (``stats.rank_report``), a search
epoch record protocol 1 on the default metric (``score.arch_tau``).  Both are timed on the same
random op-score matrices (continuous, tied, with unavailable ops) against the ground-truth table,
in one process: first the plain formulas the tests hold the fast path to (one scipy call per
vector, every table fact recomputed; ``tests/test_stats.py``), then the fast path.  Prints seconds
per record before and after, their ratio and the largest difference between the two results.

    OMP_NUM_THREADS=1 python scripts/bench_scoring.py [--records 50] [--benchmark FILE]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_stats import random_scores, reference_arch_rows, reference_rank_report  # noqa: E402

from bench import score, stats
from bench.nb201 import benchmark, space  # noqa: E402
from bench.nb201.metrics import DEFAULT_METRIC, HEADLINE_METRICS, present  # noqa: E402


def _seconds_per_call(fn, inputs) -> tuple[float, list]:
    start = time.perf_counter()
    out = [fn(x) for x in inputs]
    return (time.perf_counter() - start) / len(inputs), out


def _largest_difference(fast: list[list[dict]], plain: list[list[dict]]) -> float:
    """Largest |fast - plain| over the tau and rho fields of all rows (NaN on both sides counts 0)."""
    worst = 0.0
    for rows_a, rows_b in zip(fast, plain):
        for a, b in zip(rows_a, rows_b):
            for key in ("kendall_tau", "spearman"):
                if key in b and not (np.isnan(a[key]) and np.isnan(b[key])):
                    worst = max(worst, abs(a[key] - b[key]))
    return worst


def _report(name: str, before: float, after: float, difference: float) -> None:
    print(f"{name}: before {before:.4f} s/record, after {after:.4f} s/record, ratio {before / after:.1f}x, "
          f"largest |difference| {difference:.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50, help="op-score matrices timed (default 50)")
    parser.add_argument("--benchmark", default=None, help="ground-truth table (default: the shared one)")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    truth = benchmark.load(args.benchmark)
    truths = {m: truth.metric(m) for m in present(HEADLINE_METRICS, truth)}
    rng = np.random.default_rng(0)
    matrices = [random_scores(rng, i) for i in range(args.records)]
    pairs = [(s, space.select_cell(s)) for s in matrices]
    print(f"{args.records} records, metrics {', '.join(truths)}, table {truth.source}")

    before, plain = _seconds_per_call(lambda p: reference_rank_report(p[0], truths, p[1]), pairs)
    first, _ = _seconds_per_call(lambda p: stats.rank_report(p[0], truths, p[1]), pairs[:1])
    after, fast = _seconds_per_call(lambda p: stats.rank_report(p[0], truths, p[1]), pairs)
    print(f"first fast record (fills the per-table memo): {first:.4f} s")
    _report("selection record (protocols 1-3)", before, after, _largest_difference(fast, plain))

    metric = DEFAULT_METRIC if DEFAULT_METRIC in truth.metrics else truth.metric_names[0]
    values = truth.metric(metric)
    before, plain = _seconds_per_call(lambda s: reference_arch_rows(s, values, metric)[:1], matrices)
    after, fast = _seconds_per_call(lambda s: [score.arch_tau(s, truth)], matrices)
    _report("epoch record (protocol 1, all cells)", before, after, _largest_difference(fast, plain))


if __name__ == "__main__":
    main()
