"""The Kendall-tau report (``report tau``): ``docs/criteria.md`` §6 protocols per criterion.

- ``summary``: per line (method x config x criterion x selection, ``bench.report.aggregate``) x
  protocol x subset x data set, Kendall tau-b and Spearman rho at the final epoch as mean over
  seeds with a percentile bootstrap interval of that mean (seeds resampled; no interval from a
  single seed), with the count of edges that entered each per-edge mean (protocols 2-3: an
  edge with fewer than two scored ops, as on NAP's pruned supernet, has no tau), the scored ops
  per edge (protocol 1 ranks only the cells built from them) and a note
  where a criterion runs on a supernet it was not designed for;
- ``paired``: lines compared on the same supernets (same net, run and epoch): mean
  difference of tau, bootstrap interval and sign-flip permutation p-value
  (``bench.stats.paired_comparison``).  ``over="seeds"`` pairs final-epoch supernets only
  (independent pairs); ``over="epochs"`` pairs every saved epoch of every run, which has
  more pairs but they are not independent (neighbouring epochs share a supernet's history);
- ``figure``: tau vs search epoch per criterion, one panel per protocol.
"""
from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench import stats
from bench.nb201.metrics import DEFAULT_METRIC
from bench.report.frames import SUPERNET, at_final_epoch, complete, ordered_lines

if TYPE_CHECKING:
    from bench.report.aggregate import Experiment

KEYS = ["line", "protocol", "subset", "metric"]
"""A summary row: one line (``bench.report.aggregate``: method x config x criterion x selection)."""
CARRIED = ["net", "method", "criterion", "notes"]
COLUMNS = KEYS + CARRIED + ["seeds", "edges", "ops", "tau", "tau_low", "tau_high", "spearman", "spearman_low",
                            "spearman_high"]

FIGURE_PANELS = (("1-arch", "all", "protocol 1: architecture level, every scored cell"),
                 ("2-op-marginal", "mean", "protocol 2: op level, benchmark marginal (mean)"),
                 ("3-op-conditional", "optimum", "protocol 3: op level, around the optimum"),
                 ("4-supernet", "sample", "protocol 4: cells inside the supernet"))


def _mean_ci(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float, int]:
    mean, _, n = stats.mean_std(values)
    if n < 2:
        return mean, float("nan"), float("nan"), n
    low, high = stats.bootstrap_ci(np.mean, values[np.isfinite(values)], n_boot=n_boot, seed=seed)
    return mean, low, high, n


def _range(values) -> str:
    """``6`` or ``4-6``: the values' range over seeds (blank where none is defined)."""
    values = [v for v in values if v == v and v != ""]
    if not values:
        return ""
    parts = [int(p) for v in values for p in str(v).split("-")] if isinstance(values[0], str) else \
        [int(v) for v in values]
    return str(min(parts)) if min(parts) == max(parts) else f"{min(parts)}-{max(parts)}"


def summary(exp: Experiment, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per line x protocol x subset x metric at the final epoch, with the edges that
    entered the per-edge means (protocols 2-3) and the ops per edge, as ranges over seeds."""
    ranks = at_final_epoch(complete(exp.ranks))
    rows = []
    if ranks.empty:
        return pd.DataFrame(columns=COLUMNS)
    order = {line: i for i, line in enumerate(ordered_lines(ranks))}
    groups = dict(list(ranks.groupby(KEYS)))
    for key in sorted(groups, key=lambda k: (order[k[0]], k[1:])):
        group = groups[key]
        tau, tau_lo, tau_hi, n = _mean_ci(group["kendall_tau"].to_numpy(dtype=float), n_boot, seed)
        rho, rho_lo, rho_hi, _ = _mean_ci(group["spearman"].to_numpy(dtype=float), n_boot, seed)
        first = group.iloc[0]
        rows.append(dict(zip(KEYS, key), **{c: first[c] for c in CARRIED}, seeds=n,
                         edges=_range(group["edges"]), ops=_range(group["ops"]), tau=tau, tau_low=tau_lo,
                         tau_high=tau_hi, spearman=rho, spearman_low=rho_lo, spearman_high=rho_hi))
    return pd.DataFrame(rows, columns=COLUMNS)


def paired(exp: Experiment, over: str = "seeds", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every pair of lines on the same supernets (same net, run and epoch), per protocol/subset/metric."""
    if over not in ("seeds", "epochs"):
        raise ValueError(f"over must be 'seeds' or 'epochs', got {over!r}")
    ranks = complete(exp.ranks)
    if over == "seeds":
        ranks = at_final_epoch(ranks)
    ranks = ranks[ranks["criterion"] != SUPERNET] if not ranks.empty else ranks
    rows = []
    columns = ["net", "protocol", "subset", "metric", "a", "b", "n", "mean_diff", "ci_low", "ci_high",
               "p_value", "over"]
    if ranks.empty:
        return pd.DataFrame(columns=columns)
    for (net, protocol, subset, metric), group in ranks.groupby(["net", "protocol", "subset", "metric"]):
        wide = group.pivot_table(index=["run", "epoch"], columns="line", values="kendall_tau",
                                 aggfunc="first")
        for a, b in combinations(sorted(wide.columns), 2):
            both = wide[[a, b]].dropna()
            result = stats.paired_comparison(both[a].to_numpy(), both[b].to_numpy(), n_boot=n_boot, seed=seed)
            rows.append({"net": net, "protocol": protocol, "subset": subset, "metric": metric, "a": a, "b": b,
                         **result, "over": over})
    return pd.DataFrame(rows, columns=columns)


def _fmt(value: float, low: float = np.nan, high: float = np.nan) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]" if np.isfinite(low) else f"{value:+.3f}"


def summary_markdown(frame: pd.DataFrame, metric: str | None = None) -> str:
    """Markdown of ``summary`` (one metric, or all); the notes of the lines under the table."""
    rows = frame if metric is None else frame[frame["metric"] == metric]
    lines = ["| line | protocol | subset | data set | seeds | edges in mean | ops per edge | "
             "Kendall tau-b [95% CI] | Spearman [95% CI] |", "|---|---|---|---|---:|---:|---:|---:|---:|"]
    texts = [t for t in rows["notes"] if isinstance(t, str) and t] if not rows.empty else []
    letters = {t: chr(ord("a") + i) for i, t in enumerate(dict.fromkeys(texts))}
    for _, r in rows.iterrows():
        label = r["line"] + (f" (note {letters[r['notes']]})" if r["notes"] in letters else "")
        lines.append(f"| {label} | {r['protocol']} | {r['subset']} | {r['metric']} | {r['seeds']} | "
                     f"{r['edges']} | {r['ops']} | {_fmt(r['tau'], r['tau_low'], r['tau_high'])} | "
                     f"{_fmt(r['spearman'], r['spearman_low'], r['spearman_high'])} |")
    notes = [f"- note {letter}: {text}" for text, letter in letters.items()]
    notes.append("- edges in mean: the edges whose per-edge tau is defined (protocols 2-3; an edge with "
                 "one op left, or with tied scores, has none); ops per edge: the ops with a score (protocol "
                 "1 ranks only the cells built from them: all 15,625 at 5 ops per edge, fewer on a pruned "
                 "supernet); ranges over seeds")
    return "\n".join(lines + [""] + notes) + "\n"


def paired_markdown(frame: pd.DataFrame, metric: str | None = None) -> str:
    rows = frame if metric is None else frame[frame["metric"] == metric]
    lines = ["| supernet | protocol | subset | data set | a | b | pairs | tau(a) - tau(b) [95% CI] "
             "| p (sign flip) |",
             "|---|---|---|---|---|---|---:|---:|---:|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['net']} | {r['protocol']} | {r['subset']} | {r['metric']} | {r['a']} | "
                     f"{r['b']} | {r['n']} | {_fmt(r['mean_diff'], r['ci_low'], r['ci_high'])} | "
                     f"{r['p_value']:.3g} |")
    return "\n".join(lines) + "\n"


def figure(exp: Experiment, metric: str = DEFAULT_METRIC):
    """Kendall tau-b vs search epoch: one row of panels per net, one column per protocol, one line
    per criterion (mean over seeds, band = min-max)."""
    from bench.report import style

    ranks = complete(exp.ranks)
    ranks = ranks[ranks["metric"] == metric] if not ranks.empty else ranks
    panels = [p for p in FIGURE_PANELS if not ranks.empty and
              ((ranks["protocol"] == p[0]) & (ranks["subset"] == p[1])).any()] or list(FIGURE_PANELS[:1])
    nets = style.net_labels(ranks)
    fig, axes = style.grid(len(nets), len(panels), width_per_panel=3.8)
    for r, net in enumerate(nets or [""]):
        for ax, (protocol, subset, title) in zip(axes[r], panels):
            part = ranks if ranks.empty else ranks[(ranks["protocol"] == protocol)
                                                   & (ranks["subset"] == subset)]
            for i, line, group in style.net_lines(part, net, ranks):
                style.mean_band(ax, group, "kendall_tau", i, line)
            ax.axhline(0.0, color="0.6", linewidth=0.8)
            ax.set_title(f"{net}: {title}" if net else title, fontsize=8)
        axes[r][0].set_ylabel(f"Kendall tau-b ({metric})")
    style.finish_grid(fig, axes, ranks)
    return fig
