"""Degeneration curves (``report curves``), ``docs/criteria.md`` §7.

- ``accuracy_figure``: one row of panels per net (method x config), one column per headline data
  set: the ground-truth test accuracy (%) of the derived cell vs search epoch, one line per
  criterion and selection (mean over seeds, band = seeds' min-max; a criterion has the same look
  on every row), with the optimum and the all-skip cell as reference lines;
- ``diagnostics_figure``: per net, parameter-free ops in the derived cell (0-6) and the supernet's
  validation accuracy (%) vs epoch;
- ``collapse_figure`` (only where a dominant Hessian eigenvalue was measured, per epoch record or
  by ``select``'s ``_hessian`` records): the eigenvalue per epoch beside the own cell's accuracy
  and its parameter-free op count, the two faces of DARTS's collapse;
- ``weights_figure``: softmax(alpha) per edge over epochs, one small panel per edge and one
  line per op (mean over seeds), for one net (method x config).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bench.nb201 import space
from bench.nb201.metrics import DEFAULT_METRIC, HEADLINE_METRICS, label
from bench.report import style
from bench.report.frames import SEARCH, complete
from bench.report.reference import ALL_SKIP

if TYPE_CHECKING:
    from bench.report.aggregate import Experiment

EDGE_LABELS = [f"edge {dst}<-{src}" for dst, src in space.EDGES]


def _reference_lines(ax, truth, metric: str) -> None:
    """The optimum and the all-skip cell of ``metric`` as horizontal lines; the y axis spans the
    data and the optimum (the all-skip line shows where the data come near it)."""
    if metric not in truth.metrics:
        return
    values = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), dtype=float).ravel()]
    values += [y for band in ax.collections for path in band.get_paths() for y in path.vertices[:, 1]]
    skip = truth.lookup(space.parse(ALL_SKIP), [metric])
    optimum = float(np.nanmax(truth.metric(metric)))
    ax.axhline(optimum, color="0.25", linestyle=(0, (6, 3)), linewidth=1.0, label="optimum")
    ax.axhline(skip[metric], color="0.45", linestyle=(0, (1, 2)), linewidth=1.2, label="all-skip cell")
    finite = [y for y in values if np.isfinite(y)]
    if finite:
        low, high = min(finite), max(max(finite), optimum)
        pad = max(0.5, 0.06 * (high - low))
        ax.set_ylim(low - pad, high + pad)


def accuracy_figure(exp: Experiment, truth):
    """One row of panels per net, one column per headline data set; in each panel one line per
    criterion applied to that net (mean over seeds, band = min-max), with the optimum and the
    all-skip cell as reference lines (DARTS-PT Figure 4's layout)."""
    sel = complete(exp.selections)
    metrics = [m for m in HEADLINE_METRICS if f"acc:{m}" in sel.columns] or [DEFAULT_METRIC]
    nets = style.net_labels(sel)
    fig, axes = style.grid(len(nets), len(metrics))
    for r, net in enumerate(nets or [""]):
        for ax, metric in zip(axes[r], metrics):
            for i, line, rows in style.net_lines(sel, net, sel):
                style.mean_band(ax, rows, f"acc:{metric}", i, line)
            _reference_lines(ax, truth, metric)
            ax.set_title(f"{net}: {label(metric)}" if net else label(metric), fontsize=9)
        axes[r][0].set_ylabel("derived cell, test acc. (%)")
    style.finish_grid(fig, axes, sel)
    return fig


def diagnostics_figure(exp: Experiment):
    """Per net (one row each): the parameter-free ops of each criterion's derived cell, and the
    supernet's accuracy on the alpha half, vs search epoch."""
    sel = complete(exp.selections)
    epochs = complete(exp.epochs)
    nets = sorted(set(style.net_labels(sel)) | set(style.net_labels(epochs)))
    fig, axes = style.grid(len(nets), 2, width_per_panel=4.6)
    for r, net in enumerate(nets or [""]):
        for i, line, rows in style.net_lines(sel, net, sel):
            style.mean_band(axes[r][0], rows, "parameter_free_ops", i, line)
        _free_ops_axis(axes[r][0])
        axes[r][0].set_title(f"{net}: none / skip / avg-pool edges of the derived cell", fontsize=9)
        rows = epochs[epochs["net"] == net] if not epochs.empty else epochs
        if not rows.empty:
            style.mean_band(axes[r][1], rows, "valid_acc", 0, "supernet, alpha half", fixed="0.2")
        axes[r][1].set_ylabel("supernet valid. accuracy (%)")
        axes[r][1].set_title(f"{net}: supernet on the alpha half", fontsize=9)
    style.finish_grid(fig, axes, sel if not sel.empty else epochs)
    return fig


def _free_ops_axis(ax) -> None:
    ax.set_ylim(-0.3, 6.3)
    ax.set_ylabel("parameter-free ops (0-6)")


def has_hessian(exp: Experiment) -> bool:
    """Whether any finished run measured a Hessian eigenvalue."""
    epochs = complete(exp.epochs)
    return (not epochs.empty and "hessian_eigenvalue" in epochs
            and bool(epochs["hessian_eigenvalue"].notna().any()))


def collapse_figure(exp: Experiment, truth, metric: str = DEFAULT_METRIC):
    """Dominant Hessian eigenvalue of the validation loss w.r.t. alpha per epoch, beside the own
    cell's ``metric`` accuracy and parameter-free op count, one line per net."""
    own = complete(exp.selections)
    own = own[own["criterion"] == SEARCH] if not own.empty else own
    epochs = complete(exp.epochs)
    epochs = epochs[epochs["hessian_eigenvalue"].notna()] if has_hessian(exp) else epochs.iloc[0:0]
    fig, axes = style.subplots(3, width_per_panel=4.4, height=3.6)
    universe = complete(exp.epochs)
    for i, net, rows in style.ordered_nets(own, universe=universe):
        style.mean_band(axes[0], rows, f"acc:{metric}", i, f"{net} / own cell")
        style.mean_band(axes[1], rows, "parameter_free_ops", i, f"{net} / own cell")
    for i, net, rows in style.ordered_nets(epochs, universe=universe):
        style.mean_band(axes[2], rows, "hessian_eigenvalue", i, f"{net} / own cell")
    _reference_lines(axes[0], truth, metric)
    axes[0].set_title(f"own cell, {label(metric)}", fontsize=9)
    axes[0].set_xlabel("search epoch")
    axes[0].set_ylabel("test accuracy (%)")
    _free_ops_axis(axes[1])
    axes[1].set_xlabel("search epoch")
    axes[1].set_title("parameter-free ops of the own cell", fontsize=9)
    axes[2].set_title("dominant Hessian eigenvalue (alpha)", fontsize=9)
    axes[2].set_xlabel("search epoch")
    axes[2].set_ylabel("eigenvalue")
    style.share_x(axes, universe)
    style.legend_below(fig, axes)
    return fig


def weights_figure(exp: Experiment, net: str):
    """softmax(alpha) per edge and op over epochs for ``net`` (a method, or ``method [config]``
    when the experiment holds several configs of it; mean over its finished seeds)."""
    epochs = complete(exp.epochs)
    rows = epochs[(epochs["net"] == net) & epochs["weights"].notna()] if not epochs.empty else epochs
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
    fig.suptitle(f"{net}: architecture weights per edge", fontsize=10)
    style.legend_below(fig, axes, columns=5)
    return fig
