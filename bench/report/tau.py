"""The Kendall-tau report (``report tau``): ``design.md`` §6 protocols per criterion.

- ``summary``: per method x criterion x protocol x subset x data set, Kendall tau-b and
  Spearman rho at the final epoch as mean over seeds with a percentile bootstrap interval
  of that mean (seeds resampled; no interval from a single seed);
- ``paired``: criteria compared on the same supernets (same run and epoch): mean
  difference of tau, bootstrap interval and sign-flip permutation p-value
  (``bench.stats.paired_comparison``).  ``over="seeds"`` pairs final-epoch supernets only
  (independent pairs); ``over="epochs"`` pairs every saved epoch of every run, which has
  more pairs but they are not independent (neighbouring epochs share a supernet's history);
- ``figure``: tau vs search epoch per criterion, one panel per protocol.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from bench import stats
from bench.report.aggregate import SEARCH, SUPERNET, Experiment, line_order, at_final_epoch, complete

KEYS = ["method", "criterion", "protocol", "subset", "metric"]
FIGURE_PANELS = (("1-arch", "all", "protocol 1: architecture level, all 15,625 cells"),
                 ("2-op-marginal", "mean", "protocol 2: op level, benchmark marginal (mean)"),
                 ("3-op-conditional", "optimum", "protocol 3: op level, around the optimum"),
                 ("4-supernet", "sample", "protocol 4: cells inside the supernet"))


def _mean_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float, int]:
    mean, _, n = stats.mean_std(values)
    if n < 2:
        return mean, float("nan"), float("nan"), n
    low, high = stats.bootstrap_ci(np.mean, values[np.isfinite(values)], n_boot=n_boot, seed=seed)
    return mean, low, high, n


def summary(exp: Experiment, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per method x criterion x protocol x subset x metric at the final epoch."""
    ranks = at_final_epoch(complete(exp.ranks))
    rows = []
    if ranks.empty:
        return pd.DataFrame(columns=KEYS + ["seeds", "tau", "tau_low", "tau_high", "spearman", "spearman_low",
                                            "spearman_high"])
    groups = dict(list(ranks.groupby(KEYS)))
    for key in sorted(groups, key=lambda k: (line_order(k[:2]), k[2:])):
        group = groups[key]
        tau, tau_lo, tau_hi, n = _mean_ci(group["kendall_tau"].to_numpy(dtype=float), n_boot, seed)
        rho, rho_lo, rho_hi, _ = _mean_ci(group["spearman"].to_numpy(dtype=float), n_boot, seed)
        rows.append(dict(zip(KEYS, key), seeds=n, tau=tau, tau_low=tau_lo, tau_high=tau_hi, spearman=rho,
                         spearman_low=rho_lo, spearman_high=rho_hi))
    return pd.DataFrame(rows)


def paired(exp: Experiment, over: str = "seeds", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every pair of criteria of the same method on the same supernets, per protocol/subset/metric."""
    if over not in ("seeds", "epochs"):
        raise ValueError(f"over must be 'seeds' or 'epochs', got {over!r}")
    ranks = complete(exp.ranks)
    if over == "seeds":
        ranks = at_final_epoch(ranks)
    ranks = ranks[ranks["criterion"] != SUPERNET] if not ranks.empty else ranks
    rows = []
    if ranks.empty:
        return pd.DataFrame(columns=["method", "protocol", "subset", "metric", "a", "b", "n", "mean_diff", "ci_low",
                                     "ci_high", "p_value", "over"])
    for (method, protocol, subset, metric), group in ranks.groupby(["method", "protocol", "subset", "metric"]):
        wide = group.pivot_table(index=["run", "epoch"], columns="criterion", values="kendall_tau", aggfunc="first")
        for a, b in combinations(sorted(wide.columns), 2):
            both = wide[[a, b]].dropna()
            result = stats.paired_comparison(both[a].to_numpy(), both[b].to_numpy(), n_boot=n_boot, seed=seed)
            rows.append({"method": method, "protocol": protocol, "subset": subset, "metric": metric, "a": a, "b": b,
                         **result, "over": over})
    return pd.DataFrame(rows)


def _fmt(value: float, low: float = np.nan, high: float = np.nan) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]" if np.isfinite(low) else f"{value:+.3f}"


def summary_markdown(frame: pd.DataFrame, metric: str | None = None) -> str:
    """Markdown of ``summary`` (one metric, or all)."""
    rows = frame if metric is None else frame[frame["metric"] == metric]
    lines = ["| method | criterion | protocol | subset | data set | seeds | Kendall tau-b [95% CI] | Spearman [95% CI] |",
             "|---|---|---|---|---|---:|---:|---:|"]
    shown = {SUPERNET: "cells in the supernet", SEARCH: "own cell"}
    for _, r in rows.iterrows():
        lines.append(f"| {r['method']} | {shown.get(r['criterion'], r['criterion'])} | {r['protocol']} | {r['subset']} | {r['metric']} | "
                     f"{r['seeds']} | {_fmt(r['tau'], r['tau_low'], r['tau_high'])} | "
                     f"{_fmt(r['spearman'], r['spearman_low'], r['spearman_high'])} |")
    return "\n".join(lines) + "\n"


def paired_markdown(frame: pd.DataFrame, metric: str | None = None) -> str:
    rows = frame if metric is None else frame[frame["metric"] == metric]
    lines = ["| method | protocol | subset | data set | a | b | pairs | tau(a) - tau(b) [95% CI] | p (sign flip) |",
             "|---|---|---|---|---|---|---:|---:|---:|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['method']} | {r['protocol']} | {r['subset']} | {r['metric']} | {r['a']} | {r['b']} | "
                     f"{r['n']} | {_fmt(r['mean_diff'], r['ci_low'], r['ci_high'])} | {r['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


def figure(exp: Experiment, metric: str = "cifar10_test"):
    """Kendall tau-b vs search epoch, one line per method / criterion (mean over seeds, band = min-max)."""
    from bench.report import style

    ranks = complete(exp.ranks)
    ranks = ranks[ranks["metric"] == metric] if not ranks.empty else ranks
    panels = [p for p in FIGURE_PANELS if not ranks.empty and
              ((ranks["protocol"] == p[0]) & (ranks["subset"] == p[1])).any()] or list(FIGURE_PANELS[:1])
    fig, axes = style.subplots(len(panels), width_per_panel=5.0, height=3.4, columns=min(2, len(panels)))
    for ax, (protocol, subset, title) in zip(axes, panels):
        part = ranks[(ranks["protocol"] == protocol) & (ranks["subset"] == subset)] if not ranks.empty else ranks
        for i, (method, criterion), group in style.ordered_lines(part, universe=ranks):
            label = {SUPERNET: "cells in the supernet", SEARCH: "own cell"}.get(criterion, criterion)
            style.mean_band(ax, group, "kendall_tau", i, f"{method} / {label}")
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("search epoch")
        ax.set_ylabel(f"Kendall tau-b ({metric})")
    style.share_x(axes, ranks)
    style.legend_below(fig, axes)
    return fig
