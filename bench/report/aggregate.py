"""All runs of an experiment as tidy pandas frames: the one input of every report.

``results/<EXP>/<run-id>/`` folders (``bench.runstore``) are read as they are; nothing is
recomputed.  Three frames, one row per:

- ``selections``: run x epoch x criterion - the derived cell, its ground-truth accuracies
  (``acc:<dataset>_<split>``, in %), parameter-free op count and cost.  Besides the
  criteria of ``selections.jsonl`` it holds the cell the search itself derived at each
  epoch (``epochs.jsonl``) as criterion ``"search"``: argmax alpha for DARTS, the
  strongest surviving gate for NAP, the indicator for EoiNAS, the DST cell for EnTranNAS;
  for a method whose training derives no cell (``Method.cell_criterion``: DARTS-fix-alpha)
  it is that criterion's selection, at the epochs where it was run;
- ``ranks``: run x epoch x criterion x protocol x subset x metric - Kendall tau-b and
  Spearman rho (``design.md`` §6);
- ``epochs``: run x epoch - supernet validation accuracy (%), softmax weights per edge.

Every row carries ``run``, ``method``, ``profile``, ``seed`` and ``state`` (done /
incomplete / failed / running).  Reports use ``complete(frame)``; incomplete runs are
listed, never mixed into a mean.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.atomic import read_jsonl
from bench.errors import UserError
from bench.paths import results_dir
from bench.runstore import Run

SEARCH = "search"
"""Criterion name of the cell that the search method derives by itself every epoch."""

SUPERNET = "_supernet"  # protocol-4 records of bench.select
CRITERIA_ORDER = (SEARCH, "magnitude", "darts-pt", "darts-pt-proj", "ostr", "eoinas", "random", SUPERNET)
"""The order of criteria in every table and figure legend."""


def line_order(key: tuple[str, str]) -> tuple:
    """Sort key of a (method, criterion) pair: by method, then ``CRITERIA_ORDER``, then by name."""
    method, criterion = key
    rank = CRITERIA_ORDER.index(criterion) if criterion in CRITERIA_ORDER else len(CRITERIA_ORDER)
    return method, rank, criterion


@dataclass(frozen=True)
class RunInfo:
    run: str
    path: Path
    method: str
    profile: str
    seed: int
    state: str
    epochs_done: int
    epochs_total: int
    benchmark_sha256: str
    benchmark_source: str
    commit: str


def experiment_dir(experiment: str | Path) -> Path:
    """``results/<EXP>`` for a name, or the folder itself for a path."""
    path = Path(experiment)
    if not path.is_dir():
        path = results_dir() / str(experiment)
    if not path.is_dir():
        raise UserError(f"No experiment folder {experiment!r} (looked for {path}); run `python -m bench sweep SPEC` "
                        f"or `python -m bench search --experiment NAME` first")
    return path


def runs(experiment: str | Path) -> list[RunInfo]:
    """Every run folder (with a config.json) of an experiment, sorted by name."""
    from bench.sweep import state

    folder = experiment_dir(experiment)
    out = []
    for path in sorted(p for p in folder.iterdir() if (p / "config.json").exists()):
        run = Run(path)
        meta = run.meta()
        cfg = meta["config"]
        out.append(RunInfo(run=path.name, path=path, method=cfg.get("method", "darts"),
                           profile=meta.get("profile", "custom"), seed=int(meta.get("seed", 0)), state=state(path),
                           epochs_done=len(run.epochs()), epochs_total=int(cfg.get("epochs", 0)),
                           benchmark_sha256=meta.get("benchmark", {}).get("sha256", ""),
                           benchmark_source=meta.get("benchmark", {}).get("source", ""),
                           commit=meta.get("commit", "unknown")))
    if not out:
        raise UserError(f"{folder} holds no run folders (none has a config.json)")
    return out


def _base(info: RunInfo) -> dict:
    return {"run": info.run, "method": info.method, "profile": info.profile, "seed": info.seed, "state": info.state,
            "final_epoch": info.epochs_total}


def _selection_row(info: RunInfo, record: dict, criterion: str) -> dict:
    row = {**_base(info), "epoch": int(record["epoch"]), "criterion": criterion, "cell": record.get("cell"),
           "parameter_free_ops": record.get("parameter_free_ops", np.nan)}
    for metric, value in record.get("accuracies", {}).items():
        row[f"acc:{metric}"] = value
    cost = record.get("cost", {})
    row["cost_seconds"] = cost.get("seconds", record.get("seconds", np.nan) if criterion == SEARCH else np.nan)
    row["cost_epoch_equivalents"] = cost.get("epoch_equivalents", np.nan)
    row["valid_size"] = record.get("valid_size")
    return row


def _rank_rows(info: RunInfo, epoch: int, criterion: str, rows: list[dict]) -> list[dict]:
    return [{**_base(info), "epoch": epoch, "criterion": criterion, "protocol": r["protocol"],
             "subset": r.get("subset", ""), "metric": r.get("metric", ""),
             "kendall_tau": r.get("kendall_tau", np.nan), "spearman": r.get("spearman", np.nan), "n": r.get("n")}
            for r in rows]


def _search_cell(record: dict) -> str | None:
    """The search's own cell of an epoch record: the method's derivation when it has one."""
    method = record.get("method")
    if isinstance(method, dict) and method.get("cell"):
        return method["cell"]
    return record.get("cell")


@dataclass
class Experiment:
    """The three tidy frames of one experiment and the runs they came from."""

    name: str
    path: Path
    runs: list[RunInfo]
    selections: pd.DataFrame
    ranks: pd.DataFrame
    epochs: pd.DataFrame

    @property
    def incomplete_runs(self) -> list[RunInfo]:
        return [r for r in self.runs if r.state != "done"]


def load(experiment: str | Path, truth=None) -> Experiment:
    """Read every run of an experiment.  With ``truth`` (a ``GroundTruth``), every run must
    have been scored against that same table (SHA-256), else a ``UserError`` says which."""
    infos = runs(experiment)
    if truth is not None:
        stale = [r.run for r in infos if r.benchmark_sha256 and r.benchmark_sha256 != truth.sha256]
        if stale:
            raise UserError(f"Run(s) {', '.join(stale)} were scored against another benchmark table than "
                            f"{truth.source} (SHA-256 {truth.sha256[:12]}); pass --benchmark with the table the "
                            f"runs used, or report them separately")
    from bench.methods import METHODS

    sel_rows: list[dict] = []
    rank_rows: list[dict] = []
    epoch_rows: list[dict] = []
    for info in infos:
        method = METHODS.get(info.method)
        own_criterion = method.cell_criterion if method is not None else None
        for rec in read_jsonl(info.path / "epochs.jsonl"):
            epoch = int(rec["epoch"])
            if own_criterion is None:  # else the method's cell is a criterion's: taken from selections below
                search_rec = {**rec, "cell": _search_cell(rec)}
                if search_rec["cell"] is not None and search_rec["cell"] != rec.get("cell"):
                    search_rec.pop("accuracies", None)  # the method's own cell: looked up below
                    search_rec.pop("parameter_free_ops", None)
                sel_rows.append(_selection_row(info, search_rec, SEARCH))
                if rec.get("tau_arch") and search_rec["cell"] == rec.get("cell"):
                    tau = rec["tau_arch"]
                    rank_rows += _rank_rows(info, epoch, SEARCH, [{"protocol": "1-arch", "subset": "all", **tau}])
            weights = rec.get("weights")
            epoch_rows.append({**_base(info), "epoch": epoch, "valid_acc": rec.get("valid_acc", np.nan),
                               "valid_loss": rec.get("valid_loss", np.nan), "train_acc": rec.get("train_acc", np.nan),
                               "seconds": rec.get("seconds", np.nan),
                               "peak_memory_mb": rec.get("peak_memory_mb", np.nan),
                               "weights": np.asarray(weights, dtype=float) if weights is not None else None})
        for rec in read_jsonl(info.path / "selections.jsonl"):
            if rec["criterion"] == SUPERNET:
                rank_rows += _rank_rows(info, int(rec["epoch"]), SUPERNET, rec.get("rank", []))
                continue
            sel_rows.append(_selection_row(info, rec, rec["criterion"]))
            rank_rows += _rank_rows(info, int(rec["epoch"]), rec["criterion"], rec.get("rank", []))
            if rec["criterion"] == own_criterion:
                sel_rows.append(_selection_row(info, rec, SEARCH))  # its ranks stay under the criterion
    selections = pd.DataFrame(sel_rows)
    if truth is not None and not selections.empty:
        selections = _fill_accuracies(selections, truth)
    return Experiment(name=Path(experiment).name, path=experiment_dir(experiment), runs=infos,
                      selections=selections, ranks=pd.DataFrame(rank_rows), epochs=pd.DataFrame(epoch_rows))


def _fill_accuracies(frame: pd.DataFrame, truth) -> pd.DataFrame:
    """Look up the accuracies of rows that lack them (a method's own cell) in ``truth``."""
    from bench import space
    from bench.experiment import REPORTED_METRICS

    frame = frame.copy()
    for metric in REPORTED_METRICS:
        if metric not in truth.metrics:
            continue
        column = f"acc:{metric}"
        if column not in frame:
            frame[column] = np.nan
        missing = frame[column].isna() & frame["cell"].notna()
        if missing.any():
            frame[column] = frame[column].astype(float)
            frame.loc[missing, column] = [truth.lookup(c, [metric])[metric] for c in frame.loc[missing, "cell"]]
    missing = frame["parameter_free_ops"].isna() & frame["cell"].notna()
    if missing.any():
        frame["parameter_free_ops"] = frame["parameter_free_ops"].astype(float)
        frame.loc[missing, "parameter_free_ops"] = [space.count_parameter_free(space.parse(c))
                                                    for c in frame.loc[missing, "cell"]]
    return frame


def complete(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of finished runs only."""
    return frame[frame["state"] == "done"] if not frame.empty else frame


def at_final_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows at each run's last search epoch."""
    return frame[frame["epoch"] == frame["final_epoch"]] if not frame.empty else frame


def accuracy_columns(frame: pd.DataFrame) -> list[str]:
    """The ``acc:`` columns present, in the order test C10, C100, IN16, then the rest."""
    order = ["cifar10_test", "cifar100_test", "ImageNet16-120_test", "cifar10-valid_valid", "cifar10_valid",
             "cifar100_valid", "ImageNet16-120_valid"]
    present = [c for c in frame.columns if c.startswith("acc:")]
    return sorted(present, key=lambda c: (order.index(c[4:]) if c[4:] in order else len(order), c))
