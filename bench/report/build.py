"""``python -m bench report table|tau|curves|all EXP``: write the report files.

Everything goes to ``results/<EXP>/report/`` (or ``--out``); ``all`` adds ``index.md``,
which embeds the tables and figures so that one file shows the whole experiment.  Files
are written atomically; re-running overwrites them from the run folders.
"""
from __future__ import annotations

import re
from pathlib import Path

from bench.atomic import write_atomic
from bench.nb201.metrics import DEFAULT_METRIC, label
from bench.report import aggregate, curves, frames, table, tau
from bench.report.style import save


def _out_dir(exp: aggregate.Experiment, out: str | Path | None) -> Path:
    path = Path(out) if out else exp.path / "report"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, text: str) -> Path:
    write_atomic(path, text.encode())
    return path


def write_table(exp, truth, out: Path, random_ns=(10, 100, 1000)) -> dict[str, Path]:
    frame = table.comparison(exp, truth, random_ns)
    prov = table.provenance(exp, truth)
    return {"table.md": _write(out / "table.md", table.to_markdown(frame, prov)),
            "table.tex": _write(out / "table.tex", table.to_latex(frame, prov)),
            "table.csv": _write(out / "table.csv", table.to_csv(frame, prov))}


def write_tau(exp, truth, out: Path, summary=None) -> dict[str, Path]:
    summary = tau.summary(exp) if summary is None else summary
    by_seed = tau.paired(exp, over="seeds")
    by_epoch = tau.paired(exp, over="epochs")
    paired = ("# Paired comparisons of criteria\n\n## Final-epoch supernets (pairs = seeds)\n\n"
              + tau.paired_markdown(by_seed)
              + "\n## Every saved epoch (pairs = runs x epochs; not independent)\n\n"
              + tau.paired_markdown(by_epoch))
    files = {"tau.csv": _write(out / "tau.csv", summary.to_csv(index=False, float_format="%.5f")),
             "tau.md": _write(out / "tau.md", "# Kendall-tau report (final epoch)\n\n"
                              + tau.summary_markdown(summary)),
             "paired.csv": _write(out / "paired.csv",
                                  _concat(by_seed, by_epoch).to_csv(index=False, float_format="%.5f")),
             "paired.md": _write(out / "paired.md", paired)}
    for path in save(tau.figure(exp), out / "tau-vs-epoch"):
        files[path.name] = path
    return files


def _concat(*frames):
    import pandas as pd

    kept = [f for f in frames if not f.empty]
    return pd.concat(kept, ignore_index=True) if kept else frames[0]


def _slug(net: str) -> str:
    """A file-name part of a net label: ``darts [C=4, N=1]`` -> ``darts-C4-N1``."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", net.replace("=", "")).strip("-")


def write_curves(exp, truth, out: Path) -> dict[str, Path]:
    figures = {"accuracy-vs-epoch": curves.accuracy_figure(exp, truth),
               "diagnostics-vs-epoch": curves.diagnostics_figure(exp)}
    if curves.has_hessian(exp):
        figures["collapse-vs-epoch"] = curves.collapse_figure(exp, truth)
    nets = sorted(frames.complete(exp.epochs)["net"].unique()) if not exp.epochs.empty else []
    files = {}
    for stem, fig in figures.items():
        files.update({path.name: path for path in save(fig, out / stem)})
    for net in nets:
        figure = curves.weights_figure(exp, net)
        files.update({path.name: path for path in save(figure, out / f"weights-{_slug(net)}")})
    return files


def write_all(exp, truth, out: Path) -> dict[str, Path]:
    summary = tau.summary(exp)  # bootstraps every group: computed once for tau.md and index.md
    files = {**write_table(exp, truth, out), **write_tau(exp, truth, out, summary),
             **write_curves(exp, truth, out)}
    headline = summary[(summary["metric"] == DEFAULT_METRIC) & summary["protocol"].isin(
        ["1-arch", "2-op-marginal", "3-op-conditional", "4-supernet"]) & summary["subset"].isin(
        ["all", "mean", "optimum", "sample"])] if not summary.empty else summary
    weights = [name for name in files if name.startswith("weights-") and name.endswith(".png")]
    finished = sorted(r.run for r in exp.runs if r.state == "done")
    lines = [f"# Report: {exp.name}", "",
             f"{len(finished)} finished run(s) of {len(exp.runs)} in experiment `{exp.name}`.", "",
             "Runs: " + ", ".join(f"`{name}`" for name in finished),
             "", "## Comparison table (final epoch)", "", (out / "table.md").read_text(), "",
             "Also as [LaTeX](table.tex) and [CSV](table.csv).", "",
             "## Degeneration curves", "", "![accuracy vs epoch](accuracy-vs-epoch.png)", "",
             "![diagnostics vs epoch](diagnostics-vs-epoch.png)", ""]
    if "collapse-vs-epoch.png" in files:
        lines += ["![collapse indicator vs epoch](collapse-vs-epoch.png)", ""]
    lines += [f"![{name}]({name})\n" for name in sorted(weights)]
    lines += [f"## Kendall tau ({label(DEFAULT_METRIC)}, headline subsets; all in [tau.md](tau.md))", "",
              tau.summary_markdown(headline), "", "![tau vs epoch](tau-vs-epoch.png)", "",
              "Paired comparisons between criteria: [paired.md](paired.md).", ""]
    files["index.md"] = _write(out / "index.md", "\n".join(lines))
    return files


def run(what: str, experiment: str, benchmark: str | None = None, out: str | None = None,
        random_ns=(10, 100, 1000)) -> dict[str, Path]:
    from bench.errors import UserError
    from bench.nb201 import benchmark as benchmark_mod

    writers = {"table": write_table, "tau": write_tau, "curves": write_curves, "all": write_all}
    if what not in writers:
        raise UserError(f"report {what!r} is not one of {', '.join(writers)}")
    truth = benchmark_mod.load_cached(benchmark)
    exp = aggregate.load(experiment, truth)
    target = _out_dir(exp, out)
    if what == "table":
        return write_table(exp, truth, target, random_ns)
    return writers[what](exp, truth, target)
