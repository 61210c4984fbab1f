"""The comparison table: one row per method x criterion at the final epoch (``report table``).

Columns are the ground-truth accuracies (%) that the benchmark source has, test always and
valid where present, as mean ± sample std over seeds with the seed count.  Below the
measured rows: reference rows computed from the table (``bench.report.reference``) and
published rows (``bench.report.published``), each marked with its kind and source.  Every
format carries the provenance footer (commit, benchmark source and SHA-256, profiles,
seeds, runs left out).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from bench import stats
from bench.report import published, reference
from bench.report.aggregate import SEARCH, Experiment, line_order, accuracy_columns, at_final_epoch, complete
from bench.runstore import git_commit

METRIC_LABELS = {
    "cifar10_test": "C10 test", "cifar100_test": "C100 test", "ImageNet16-120_test": "IN16 test",
    "cifar10-valid_valid": "C10 valid", "cifar10_valid": "C10 valid (cifar10)", "cifar100_valid": "C100 valid",
    "ImageNet16-120_valid": "IN16 valid",
}


def comparison(exp: Experiment, truth, random_ns: tuple[int, ...] = (10, 100, 1000)) -> pd.DataFrame:
    """Tidy table: kind, label, method, criterion, seeds, source, then ``<metric>`` mean and
    ``<metric>:std`` columns (NaN where a row has no value)."""
    sel = at_final_epoch(complete(exp.selections))
    metrics = [c[4:] for c in accuracy_columns(sel)] or [m for m in METRIC_LABELS if m in truth.metrics]
    rows = []
    groups = dict(list(sel.groupby(["method", "criterion"]))) if not sel.empty else {}
    for method, criterion in sorted(groups, key=line_order):
        group = groups[(method, criterion)]
        shown = "own cell" if criterion == SEARCH else criterion
        row = {"kind": "measured", "label": f"{method} / {shown}", "method": method, "criterion": criterion,
               "seeds": int(group["seed"].nunique()), "source": exp.name}
        for m in metrics:
            mean, std, n = stats.mean_std(group[f"acc:{m}"].to_numpy(dtype=float))
            row[m], row[f"{m}:std"] = mean, (std if n > 1 else np.nan)  # no spread from one seed
        rows.append(row)
    for ref in reference.reference_rows(truth, metrics, random_ns):
        rows.append({"kind": ref["kind"], "label": ref["label"], "seeds": np.nan, "source": ref["source"],
                     **{m: v for m, v in ref["values"].items()}})
    for pub in published.ROWS:
        values = {m: v for m, v in pub["values"].items() if m in metrics}
        if values:
            rows.append({"kind": "published", "label": pub["label"], "seeds": np.nan, "source": pub["source"],
                         **{m: v[0] for m, v in values.items()},
                         **{f"{m}:std": v[1] for m, v in values.items() if v[1] is not None}})
    frame = pd.DataFrame(rows)
    for m in metrics:
        for col in (m, f"{m}:std"):
            if col not in frame:
                frame[col] = np.nan
    return frame


def table_metrics(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c in METRIC_LABELS or (":" not in c and c.endswith(("_test", "_valid")))]


def provenance(exp: Experiment, truth) -> dict:
    used = [r for r in exp.runs if r.state == "done"]
    return {"commit": git_commit(), "run_commits": sorted({r.commit for r in used}),
            "benchmark": truth.source, "benchmark_sha256": truth.sha256,
            "profiles": sorted({r.profile for r in used}), "seeds": sorted({r.seed for r in used}),
            "runs": len(used), "left_out": [f"{r.run} ({r.state}, {r.epochs_done}/{r.epochs_total} epochs)"
                                            for r in exp.incomplete_runs],
            "generated": time.strftime("%Y-%m-%d %H:%M:%S")}


def _cell(mean: float, std: float, latex: bool = False) -> str:
    if not np.isfinite(mean):
        return "-"
    if std is None or not np.isfinite(std):
        return f"{mean:.2f}"
    return f"{mean:.2f} $\\pm$ {std:.2f}" if latex else f"{mean:.2f} ± {std:.2f}"


def _footer_lines(prov: dict) -> list[str]:
    lines = [f"commit {prov['commit']} (runs made at {', '.join(prov['run_commits']) or '-'})",
             f"benchmark {prov['benchmark']} (SHA-256 {prov['benchmark_sha256']})",
             f"profiles {', '.join(prov['profiles']) or '-'}; seeds {', '.join(map(str, prov['seeds'])) or '-'}; "
             f"{prov['runs']} finished run(s); generated {prov['generated']}"]
    if prov["left_out"]:
        lines.append("left out (not finished): " + "; ".join(prov["left_out"]))
    lines.append("measured: mean ± sample std over seeds at the final epoch (no ± for one seed); 'own cell' is "
                 "the cell the search method derives itself (argmax alpha for DARTS; DARTS-PT's projection for "
                 "darts-fix-alpha, whose alpha never trains); reference: computed from the "
                 "benchmark table; published: quoted from the named paper, not produced here")
    return lines


def to_markdown(frame: pd.DataFrame, prov: dict) -> str:
    metrics = table_metrics(frame)
    head = ["row", "kind", "seeds"] + [METRIC_LABELS.get(m, m) + " (%)" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for _, r in frame.iterrows():
        seeds = "" if pd.isna(r["seeds"]) else str(int(r["seeds"]))
        label = r["label"] if r["kind"] != "published" else f"{r['label']} [{r['source']}]"
        cells = [_cell(r[m], r.get(f"{m}:std", np.nan)) for m in metrics]
        lines.append("| " + " | ".join([label, r["kind"], seeds] + cells) + " |")
    sources = sorted({s for s in frame.loc[frame["kind"] == "published", "source"]})
    notes = [f"[{s}] {published.SOURCES.get(s, s)}" for s in sources]
    return "\n".join(lines + [""] + [f"- {line}" for line in notes + _footer_lines(prov)]) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("±", "$\\pm$")):
        text = text.replace(a, b)
    return text


def to_latex(frame: pd.DataFrame, prov: dict) -> str:
    """A booktabs table; measured, reference and published rows separated by midrules."""
    metrics = table_metrics(frame)
    out = ["\\begin{table}[t]", "\\centering", "\\small",
           "\\begin{tabular}{l r " + " ".join("r" for _ in metrics) + "}", "\\toprule",
           " & ".join(["Method / criterion", "Seeds"] + [_tex(METRIC_LABELS.get(m, m)) + " (\\%)" for m in metrics])
           + " \\\\", "\\midrule"]
    previous = None
    for _, r in frame.iterrows():
        if previous is not None and r["kind"] != previous:
            out.append("\\midrule")
        previous = r["kind"]
        seeds = "" if pd.isna(r["seeds"]) else str(int(r["seeds"]))
        label = _tex(r["label"]) + (f" [{_tex(r['source'])}]" if r["kind"] == "published" else "")
        out.append(" & ".join([label, seeds] + [_cell(r[m], r.get(f"{m}:std", np.nan), latex=True)
                                                for m in metrics]) + " \\\\")
    cited = sorted({s for s in frame.loc[frame["kind"] == "published", "source"]})
    notes = [f"[{s}] {published.SOURCES.get(s, s)}" for s in cited] + _footer_lines(prov)
    out += ["\\bottomrule", "\\end{tabular}", "\\caption{" + _tex("; ".join(notes)) + "}", "\\end{table}"]
    return "\n".join(out) + "\n"


def to_csv(frame: pd.DataFrame, prov: dict) -> str:
    """The tidy frame, with the provenance as ``#`` comment lines at the end."""
    text = frame.to_csv(index=False, float_format="%.4f")
    return text + "".join(f"# {line}\n" for line in _footer_lines(prov))
