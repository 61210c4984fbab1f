"""Plot conventions shared by the report figures: readable in greyscale (every line has its
own dash pattern and marker besides its colour), legends outside the data, units on axes."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg by itself
import numpy as np
import pandas as pd

COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
          "#882255", "#44AA99", "#999933"]  # Okabe-Ito + Tol's wine, teal, olive: a colour per criterion
DASHES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (8, 2))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def ordered_nets(frame: pd.DataFrame, universe: pd.DataFrame | None = None):
    """Yield (style index, net, rows) per net of ``frame``, sorted; the style index is the net's
    position in ``universe`` (default ``frame``), so that a net keeps its look on panels that show
    only some of the nets."""
    position = {net: i for i, net in enumerate(net_labels(frame if universe is None else universe))}
    for net in net_labels(frame):
        yield position.get(net, len(position)), net, frame[frame["net"] == net]


def net_labels(frame: pd.DataFrame) -> list[str]:
    """The nets (method, or ``method [config]``) of a frame, sorted: one row of panels each."""
    return [] if frame.empty else sorted(frame["net"].unique())


def _within_net(line: str, net: str) -> str:
    """A line label without its net (``darts / magnitude`` -> ``magnitude``)."""
    return line[len(net) + 3:] if line.startswith(f"{net} / ") else line


def net_lines(frame: pd.DataFrame, net: str, universe: pd.DataFrame):
    """Yield (style index, label, rows) for the lines of one net, the label without the net, in the
    order of ``bench.report.frames.CRITERIA_ORDER``.  The style index is the label's position among
    the labels of every net in ``universe``, so that a criterion looks the same on every row."""
    from bench.report.frames import line_order

    def keyed(part: pd.DataFrame) -> dict[str, tuple]:
        firsts = part.drop_duplicates("line")
        return {_within_net(r["line"], r["net"]): line_order(("", r["criterion"]))[1:]
                for _, r in firsts.iterrows()}

    every = keyed(universe) if not universe.empty else {}
    position = {label: i for i, label in enumerate(sorted(every, key=lambda lab: (every[lab], lab)))}
    part = frame[frame["net"] == net] if not frame.empty else frame
    mine = keyed(part) if not part.empty else {}
    for label in sorted(mine, key=lambda lab: (mine[lab], lab)):
        rows = part[[_within_net(line, net) == label for line in part["line"]]]
        yield position.get(label, len(position)), label, rows


def grid(rows: int, columns: int, width_per_panel: float = 4.0, height: float = 2.8):
    """A rows x columns grid of panels (a list of rows), one x axis for all; each panel scales its
    own y axis to its data, so that a small drift is visible next to a collapse in another row."""
    rows = max(rows, 1)
    fig, axes = plt.subplots(rows, columns, figsize=(width_per_panel * columns, height * rows), squeeze=False,
                             sharex=True)
    return fig, [list(row) for row in axes]


def finish_grid(fig, axes: list[list], frame: pd.DataFrame) -> None:
    """A ``grid``'s last touches: "search epoch" under the bottom row, the epochs of ``frame`` on
    every panel, one legend below."""
    for ax in axes[-1]:
        ax.set_xlabel("search epoch")
    flat = [ax for row in axes for ax in row]
    share_x(flat, frame)
    legend_below(fig, flat, columns=4)


def share_x(axes, frame: pd.DataFrame) -> None:
    """The same epoch range on every panel."""
    if frame.empty:
        return
    from matplotlib.ticker import MaxNLocator

    low, high = float(frame["epoch"].min()), float(frame["epoch"].max())
    pad = max(0.5, 0.03 * (high - low))
    for ax in axes:
        ax.set_xlim(low - pad, high + pad)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def line_style(i: int) -> dict:
    return {"color": COLORS[i % len(COLORS)], "linestyle": DASHES[i % len(DASHES)],
            "marker": MARKERS[(i // len(DASHES) + i) % len(MARKERS)], "markersize": 3.5, "linewidth": 1.4}


def subplots(panels: int, width_per_panel: float = 4.2, height: float = 3.4, columns: int | None = None):
    columns = columns or panels
    rows = int(np.ceil(panels / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(width_per_panel * columns, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[:panels]


def mean_band(ax, frame: pd.DataFrame, column: str, i: int, label: str, fixed: str | None = None) -> None:
    """Mean over seeds per epoch as a line, the seeds' min-max as a shaded band; ``fixed``: a colour
    for a line outside the numbered styles (a solid line with dots)."""
    grouped = frame.groupby("epoch")[column]
    mean, low, high = grouped.mean(), grouped.min(), grouped.max()
    style = line_style(i) if fixed is None else {"color": fixed, "linestyle": "-", "marker": "o",
                                                 "markersize": 3.0, "linewidth": 1.4}
    ax.plot(mean.index, mean.to_numpy(), label=label, **style)
    if (high - low).abs().max() > 0:
        ax.fill_between(mean.index, low.to_numpy(), high.to_numpy(), color=style["color"], alpha=0.15,
                        linewidth=0)


def legend_below(fig, axes, columns: int = 3) -> None:
    """One legend for the figure, under the panels, so that it never covers data."""
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if not labels:
        fig.tight_layout()
        return
    rows = int(np.ceil(len(labels) / columns))
    legend_inches = 0.19 * rows + 0.2
    panels_inches = fig.get_figheight()
    fig.set_figheight(panels_inches + legend_inches)  # room of its own: the legend never covers a panel
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=columns, fontsize=8,
               frameon=False)


def save(fig, path_stem: Path) -> list[Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.pdf``; returns both paths."""
    from bench.atomic import write_atomic

    out = []
    for suffix, kwargs in ((".png", {"dpi": 150}), (".pdf", {})):
        path = path_stem.with_suffix(suffix)
        write_atomic(path, lambda handle, kw=kwargs, fmt=suffix[1:]: fig.savefig(handle, format=fmt, **kw))
        out.append(path)
    plt.close(fig)
    return out
