"""Degeneration curves (``report curves``), ``design.md`` §7 and criteria-spec §10.

- ``accuracy_figure``: per data set, the ground-truth test accuracy (%) of the derived cell
  vs search epoch, one line per method / criterion (mean over seeds, band = seeds' min-max),
  with the optimum and the all-skip cell as reference lines;
- ``diagnostics_figure``: parameter-free ops in the derived cell (0-6) and the supernet's
  validation accuracy (%) vs epoch;
- ``weights_figure``: softmax(alpha) per edge over epochs, one small panel per edge and one
  line per op (mean over seeds), for one method.
"""
from __future__ import annotations

import numpy as np

from bench import space
from bench.report import style
from bench.report.aggregate import SEARCH, Experiment, complete
from bench.report.reference import ALL_SKIP
from bench.report.table import METRIC_LABELS

TEST_METRICS = ("cifar10_test", "cifar100_test", "ImageNet16-120_test")
EDGE_LABELS = [f"edge {dst}<-{src}" for dst, src in space.EDGES]


def _label(method: str, criterion: str) -> str:
    return f"{method} / {'own cell' if criterion == SEARCH else criterion}"


def accuracy_figure(exp: Experiment, truth):
    sel = complete(exp.selections)
    metrics = [m for m in TEST_METRICS if f"acc:{m}" in sel.columns] or ["cifar10_test"]
    fig, axes = style.subplots(len(metrics), width_per_panel=4.4, height=3.6)
    skip = truth.lookup(space.parse(ALL_SKIP))
    for ax, metric in zip(axes, metrics):
        for i, (method, criterion), rows in style.ordered_lines(sel):
            style.mean_band(ax, rows, f"acc:{metric}", i, _label(method, criterion))
        if metric in truth.metrics:
            ax.axhline(float(np.nanmax(truth.metric(metric))), color="0.25", linestyle=(0, (6, 3)), linewidth=1.0,
                       label="optimum")
            ax.axhline(skip[metric], color="0.45", linestyle=(0, (1, 2)), linewidth=1.2, label="all-skip cell")
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("search epoch")
        ax.set_ylabel("derived cell, test accuracy (%)")
    style.share_x(axes, sel)
    style.legend_below(fig, axes)
    return fig


def diagnostics_figure(exp: Experiment):
    sel = complete(exp.selections)
    epochs = complete(exp.epochs)
    fig, axes = style.subplots(2, width_per_panel=5.0, height=3.6)
    for i, (method, criterion), rows in style.ordered_lines(sel):
        style.mean_band(axes[0], rows, "parameter_free_ops", i, _label(method, criterion))
    axes[0].set_ylim(-0.3, 6.3)
    axes[0].set_xlabel("search epoch")
    axes[0].set_ylabel("parameter-free ops (0-6)")
    axes[0].set_title("none / skip / avg-pool edges of the derived cell", fontsize=9)
    for i, (method, group) in enumerate(epochs.groupby("method", sort=True)) if not epochs.empty else []:
        style.mean_band(axes[1], group, "valid_acc", i, f"{method} (supernet)")
    axes[1].set_xlabel("search epoch")
    axes[1].set_ylabel("supernet valid. accuracy (%)")
    axes[1].set_title("supernet on the alpha half", fontsize=9)
    style.share_x(axes, sel)
    style.legend_below(fig, axes)
    return fig


def weights_figure(exp: Experiment, method: str):
    """softmax(alpha) per edge and op over epochs for ``method`` (mean over its finished seeds)."""
    epochs = complete(exp.epochs)
    rows = epochs[(epochs["method"] == method) & epochs["weights"].notna()] if not epochs.empty else epochs
    fig, axes = style.subplots(space.NUM_EDGES, width_per_panel=3.0, height=2.5, columns=3)
    if rows.empty:
        style.legend_below(fig, axes)
        return fig
    stacked = rows.groupby("epoch")["weights"].apply(lambda w: np.mean(np.stack(list(w)), axis=0))
    xs = stacked.index.to_numpy()
    values = np.stack(stacked.to_list())  # epochs x edges x ops
    for e, ax in enumerate(axes):
        for o, name in enumerate(space.OPS):
            ax.plot(xs, values[:, e, o], label=name, **style.line_style(o))
        ax.set_title(EDGE_LABELS[e], fontsize=9)
        ax.set_xlabel("search epoch")
        ax.set_ylabel("softmax(alpha)")
        ax.set_ylim(0, max(0.5, float(np.nanmax(values)) * 1.05))
    style.share_x(axes, rows)
    fig.suptitle(f"{method}: architecture weights per edge", fontsize=10)
    style.legend_below(fig, axes, columns=5)
    return fig
