"""The comparison table: one row per line (method x config x criterion x selection) at the final epoch.

Columns are the ground-truth accuracies (%) that the benchmark source has, test always and
valid where present, then the cell's skip connections (the count DARTS degenerates on) and the
parameters and FLOPs of its stand-alone network, as mean ± sample std over seeds with the seed
count.  Rows pool only runs of one procedure (``bench.report.procedure``); every row names its
search procedure (``S1``, ``S2``, ... spelled out under the table: profile with its size, method,
epoch) and its selection (criterion with its options, validation size).  After the measured
rows come reference rows computed from the table (``bench.report.reference``) and published
rows (``bench.report.published``): a published row stands beside a measured row only when
their procedures match; every other one goes into a separate "published, other procedure"
block whose footnote names both procedures.  Every format carries the provenance footer
(commit, benchmark source and SHA-256, profiles as run, seeds, runs left out).
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bench import stats
from bench.nb201 import space
from bench.nb201.metrics import TABLE_ORDER, label
from bench.report import procedure, published, reference
from bench.report.frames import (SEARCH, accuracy_columns, at_final_epoch, cell_costs, complete,
                                 ordered_lines, shown)
from bench.runs.runstore import git_commit

if TYPE_CHECKING:
    from bench.report.aggregate import Experiment

CELL_COLUMNS = {"skip_connections": "skip connections", "params_m": "params (M)", "flops_m": "FLOPs (M)"}
"""Columns that describe the selected cell itself (after the accuracies), with their headings: its
skip connections and its stand-alone network's cost (``bench.nets.cellcost``), when present."""
MAIN, OTHER = "main", "published, other procedure"
"""The two blocks of the table."""


def _search_text(row: pd.Series) -> str:
    """The search procedure of a measured row: profile as run, method, epoch."""
    return f"profile {row['procedure']}; method {row['method']}; epoch {int(row['final_epoch'])}"


def _selection_text(row: pd.Series) -> str:
    """The selection procedure of a measured row: criterion with its options, validation size, none rule."""
    name = shown(row["criterion"]) if row["criterion"] == SEARCH else row["criterion"]
    options = json.loads(row["options"])
    return procedure.describe_selection(name, options, row["valid_size"], row["allow_none"])


def _matchable(row: pd.Series) -> dict:
    """What ``procedure.matches`` compares of a measured row."""
    size = row["valid_size"]
    return {"profile": row["profile"], "identity": json.loads(row["config"]), "method": row["method"],
            "criterion": row["criterion"], "options": json.loads(row["options"]),
            "valid_size": None if size is None or size != size else int(size)}


def _measured(sel: pd.DataFrame, metrics: list[str], cell_columns: list[str], name: str) -> list[dict]:
    rows = []
    for line in ordered_lines(sel):
        group = sel[sel["line"] == line]
        first = group.iloc[0]
        row = {"kind": "measured", "block": MAIN, "label": line, "method": first["method"],
               "criterion": first["criterion"], "search_text": _search_text(first),
               "selection": _selection_text(first),
               "seeds": int(group["seed"].nunique()), "source": name, "note": first["notes"],
               "_match": _matchable(first)}
        for m in metrics + cell_columns:
            mean, std, n = stats.mean_std(group[m if m in cell_columns else f"acc:{m}"].to_numpy(dtype=float))
            row[m], row[f"{m}:std"] = mean, (std if n > 1 else np.nan)  # no spread from one seed
        rows.append(row)
    return rows


def _published(pub: dict, metrics: list[str]) -> dict | None:
    values = {m: v for m, v in pub["values"].items() if m in metrics}
    if not values:
        return None
    proc = pub["procedure"]
    note = pub.get("note", "") or ("" if proc else "the benchmark's best cell per column: no search")
    means = {m: v[0] for m, v in values.items()}
    spread = {f"{m}:std": v[1] for m, v in values.items() if v[1] is not None}
    return {"kind": "published", "label": pub["label"], "seeds": np.nan, "source": pub["source"],
            "note": note, "search_text": proc["text"] if proc else "", "selection": "", **means, **spread}


def comparison(exp: Experiment, truth, random_ns: tuple[int, ...] = (10, 100, 1000)) -> pd.DataFrame:
    """Tidy table: kind, block, label, method, criterion, procedure (search procedure id),
    search_text, selection (criterion with options, validation size), seeds, source, note, then
    ``<metric>`` mean and ``<metric>:std`` columns (NaN where a row has no value), then
    ``skip_connections``, ``params_m`` / ``flops_m`` where the cells are known."""
    sel = at_final_epoch(complete(exp.selections))
    metrics = [c[4:] for c in accuracy_columns(sel)] or [m for m in TABLE_ORDER if m in truth.metrics]
    cell_columns = [c for c in CELL_COLUMNS if c in sel.columns]
    measured = _measured(sel, metrics, cell_columns, exp.name) if not sel.empty else []
    main: list[dict] = []
    other: list[dict] = []
    free: list[dict] = []
    placed: dict[int, list[dict]] = {}
    for pub in published.ROWS:
        row = _published(pub, metrics)
        if row is None:
            continue
        proc = pub["procedure"]
        hits = [i for i, r in enumerate(measured) if proc and procedure.matches(proc, r["_match"])]
        if proc is None:
            free.append({**row, "block": MAIN})
        elif hits:
            placed.setdefault(hits[0], []).append({**row, "block": MAIN, "_beside": hits[0]})
        else:
            other.append({**row, "block": OTHER})
    for i, row in enumerate(measured):
        main.append(row)
        main += placed.get(i, [])
    for ref in reference.reference_rows(truth, metrics, random_ns):
        extra = _reference_cell(ref) if cell_columns else {}
        main.append({"kind": ref["kind"], "block": MAIN, "label": ref["label"], "seeds": np.nan,
                     "source": ref["source"], "note": "", "search_text": "", "selection": "",
                     **ref["values"], **extra})
    frame = pd.DataFrame(main + free + other)
    frame = _number_procedures(frame, measured)
    for m in metrics + cell_columns:
        for col in (m, f"{m}:std"):
            if col not in frame:
                frame[col] = np.nan
    front = ["kind", "block", "label", "method", "criterion", "procedure", "search_text", "selection",
             "seeds", "source", "note"]
    for col in front:
        if col not in frame:
            frame[col] = np.nan
    values = [c for m in metrics + cell_columns for c in (m, f"{m}:std")]
    return frame[front + values]


def _reference_cell(ref: dict) -> dict:
    """The cell columns of a reference row that is one cell (the all-skip cell)."""
    if ref["label"] != "all-skip cell":
        return {}
    return {"skip_connections": space.count_skip_connections(space.parse(reference.ALL_SKIP)),
            **cell_costs(reference.ALL_SKIP)}


def _number_procedures(frame: pd.DataFrame, measured: list[dict]) -> pd.DataFrame:
    """``S1``, ``S2``, ... per distinct search procedure, measured ones first; a published row
    that matches a measured one takes that row's number; reference rows have none."""
    ids: dict[str, str] = {}
    for text in [r["search_text"] for r in measured] + list(frame["search_text"]):
        if text:
            ids.setdefault(text, f"S{len(ids) + 1}")
    frame["procedure"] = [ids.get(t, "") for t in frame["search_text"]]
    if "_beside" in frame:
        beside = frame["_beside"].notna()
        rows = frame.loc[beside, "_beside"]
        frame.loc[beside, "procedure"] = [ids[measured[int(i)]["search_text"]] for i in rows]
    return frame


def table_metrics(frame: pd.DataFrame) -> list[str]:
    """The value columns of a comparison frame (accuracies, then the cell columns)."""
    return [c for c in frame.columns if c in TABLE_ORDER or c in CELL_COLUMNS
            or (":" not in c and c.endswith(("_test", "_valid")))]


def _head(metric: str) -> str:
    return CELL_COLUMNS.get(metric) or label(metric) + " (%)"


def provenance(exp: Experiment, truth) -> dict:
    used = [r for r in exp.runs if r.state == "done"]
    other_tables = sorted({r.benchmark_sha256[:12] for r in used if r.benchmark_sha256
                           and r.benchmark_sha256 != truth.sha256})
    sel = complete(exp.selections)
    split = []
    if not sel.empty:
        for method, nets in sel.groupby("method")["net"].unique().items():
            if len(nets) > 1:
                split.append(f"{method}: {', '.join(sorted(nets))}")
    run_commits = sorted({c for r in used for c in (r.commits or (r.commit,))})
    return {"commit": git_commit(), "run_commits": run_commits,
            "benchmark": truth.source_name, "benchmark_sha256": truth.sha256,
            "searched_with_other_tables": other_tables,
            "profiles": sorted({r.procedure for r in used}), "seeds": sorted({r.seed for r in used}),
            "runs": len(used), "not_pooled": split,
            "left_out": [f"{r.run} ({r.state}, {r.epochs_done}/{r.epochs_total} epochs)"
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
             f"benchmark {prov['benchmark']} (SHA-256 {prov['benchmark_sha256']}): every number scored now "
             f"against this table"]
    if prov["searched_with_other_tables"]:
        lines.append("runs made while another table was the default (SHA-256 "
                     f"{', '.join(prov['searched_with_other_tables'])}...): scored against the table above")
    lines.append(f"profiles as run: {'; '.join(prov['profiles']) or '-'}; seeds "
                 f"{', '.join(map(str, prov['seeds'])) or '-'}; {prov['runs']} finished run(s); generated "
                 f"{prov['generated']}")
    if prov["not_pooled"]:
        lines.append("runs of one method with different configs are separate rows, never pooled: "
                     + "; ".join(prov["not_pooled"]))
    if prov["left_out"]:
        lines.append("left out (not finished): " + "; ".join(prov["left_out"]))
    lines.append("measured: mean ± sample std over seeds at the final epoch (no ± for one seed); 'own cell' "
                 "is the cell the search method derives itself (argmax alpha for DARTS; DARTS-PT's "
                 "projection for darts-fix-alpha, whose alpha never trains); reference: computed from the "
                 "benchmark table; published: quoted from the named paper, not produced here; params / "
                 "FLOPs: the cell's stand-alone network at the benchmark's size (C=16, N=5, CIFAR-10)")
    return lines


def _notes(frame: pd.DataFrame) -> dict[str, str]:
    """A letter per distinct note of the rows (``note a``)."""
    texts = [t for t in frame["note"] if isinstance(t, str) and t]
    return {t: chr(ord("a") + i) for i, t in enumerate(dict.fromkeys(texts))}


def _label(r: pd.Series, letters: dict[str, str]) -> str:
    label = r["label"] if r["kind"] != "published" else f"{r['label']} [{r['source']}]"
    return label + (f" (note {letters[r['note']]})" if r["note"] in letters else "")


def _ids(values) -> str:
    return ", ".join(dict.fromkeys(v for v in values if v)) or "none"


def _procedure_lines(frame: pd.DataFrame) -> list[str]:
    """The search procedures spelled out, and what the block of other procedures is."""
    firsts = frame[(frame["procedure"] != "") & (frame["search_text"] != "")].drop_duplicates("procedure")
    lines = [f"{r['procedure']}: {r['search_text']}" for _, r in firsts.iterrows()]
    other = frame[frame["block"] == OTHER]
    if not other.empty:
        measured = _ids(frame.loc[frame["kind"] == "measured", "procedure"])
        lines.append(f"published, other procedure: {_ids(other['procedure'])} match(es) the procedure of no "
                     f"measured row here ({measured}, with their selection); quoted for context, not "
                     f"compared")
    return lines


def _footnotes(frame: pd.DataFrame, prov: dict) -> list[str]:
    letters = _notes(frame)
    sources = sorted({s for s in frame.loc[frame["kind"] == "published", "source"]})
    return (_procedure_lines(frame) + [f"note {letter}: {text}" for text, letter in letters.items()]
            + [f"[{s}] {published.SOURCES.get(s, s)}" for s in sources] + _footer_lines(prov))


def _markdown_rows(frame: pd.DataFrame, metrics: list[str], letters: dict[str, str]) -> list[str]:
    head = ["row", "kind", "search", "selection", "seeds"] + [_head(m) for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * (len(head) - 4)) + "|"]
    for _, r in frame.iterrows():
        seeds = "" if pd.isna(r["seeds"]) else str(int(r["seeds"]))
        cells = [_cell(r[m], r.get(f"{m}:std", np.nan)) for m in metrics]
        first = [_label(r, letters), r["kind"], r["procedure"], r["selection"], seeds]
        lines.append("| " + " | ".join(first + cells) + " |")
    return lines


def to_markdown(frame: pd.DataFrame, prov: dict) -> str:
    metrics = table_metrics(frame)
    letters = _notes(frame)
    lines = _markdown_rows(frame[frame["block"] == MAIN], metrics, letters)
    other = frame[frame["block"] == OTHER]
    if not other.empty:
        lines += ["", "Published, other procedure (not comparable with the rows above):", ""]
        lines += _markdown_rows(other, metrics, letters)
    return "\n".join(lines + [""] + [f"- {line}" for line in _footnotes(frame, prov)]) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"),
                 ("±", "$\\pm$")):
        text = text.replace(a, b)
    return text


def to_latex(frame: pd.DataFrame, prov: dict) -> str:
    """A booktabs table; measured, reference and published rows separated by midrules, the
    published rows of other procedures under their own heading."""
    metrics = table_metrics(frame)
    letters = _notes(frame)
    width = 4 + len(metrics)
    out = ["\\begin{table}[t]", "\\centering", "\\small",
           "\\begin{tabular}{l l l r " + " ".join("r" for _ in metrics) + "}", "\\toprule",
           " & ".join(["Method / criterion", "Search", "Selection", "Seeds"]
                      + [_tex(_head(m)) for m in metrics]) + " \\\\",
           "\\midrule"]
    previous = None
    for _, r in frame.iterrows():
        if previous is not None and (r["kind"], r["block"]) != previous:
            out.append("\\midrule")
            if r["block"] == OTHER and previous[1] != OTHER:
                out.append(f"\\multicolumn{{{width}}}{{l}}{{\\emph{{Published, other procedure}}}} \\\\")
        previous = (r["kind"], r["block"])
        seeds = "" if pd.isna(r["seeds"]) else str(int(r["seeds"]))
        cells = [_cell(r[m], r.get(f"{m}:std", np.nan), latex=True) for m in metrics]
        out.append(" & ".join([_tex(_label(r, letters)), r["procedure"], _tex(r["selection"]), seeds] + cells)
                   + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\caption{" + _tex("; ".join(_footnotes(frame, prov))) + "}",
            "\\end{table}"]
    return "\n".join(out) + "\n"


def to_csv(frame: pd.DataFrame, prov: dict) -> str:
    """The tidy frame, with the procedures, notes and provenance as ``#`` comment lines at the end."""
    text = frame.to_csv(index=False, float_format="%.4f")
    return text + "".join(f"# {line}\n" for line in _footnotes(frame, prov))
