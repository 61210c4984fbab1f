"""All runs of an experiment as tidy pandas frames: the one input of every report.

``results/<EXP>/<run-id>/`` folders (``bench.runs.runstore``) are read as they are, and everything
scored is computed now against the ground-truth table given to ``load`` (``bench.score``):
run folders hold what was measured (op scores, cells, alpha), so another table needs no rerun
and records written when runs still stored their accuracies load to the same numbers.
Three frames, one row per:

- ``selections``: run x epoch x criterion - the derived cell, its ground-truth accuracies
  (``acc:<dataset>_<split>``, in %), parameter-free op and skip-connection counts, the stand-alone network's
  parameters and FLOPs (``params_m``, ``flops_m``, when ``bench.nets.cellcost`` is there) and the
  criterion's cost.  Besides the criteria of ``selections.jsonl`` it holds the cell the search
  itself derived at each epoch (``epochs.jsonl``) as criterion ``"search"``: argmax alpha for
  DARTS, the strongest surviving gate for NAP, the indicator for EoiNAS, the DST cell for
  EnTranNAS; for a method whose training derives no cell (``Method.cell_criterion``:
  DARTS-fix-alpha) it is that criterion's selection, at the epochs where it was run;
- ``ranks`` (computed on first use: it scores every op-score matrix on protocols 1-4): run x
  epoch x criterion x protocol x subset x metric - Kendall tau-b and Spearman rho
  (``docs/criteria.md`` §6), with the edges that entered a per-edge mean and the ops per edge;
- ``epochs``: run x epoch - supernet validation accuracy (%), softmax weights per edge, the
  dominant Hessian eigenvalue where one was measured.

Every row carries ``run``, ``method``, ``profile``, ``seed``, ``state`` (done / incomplete /
failed / running), its procedure (``config``: the config identity; ``procedure``: the profile
as run) and the readable label of the group it may be pooled in: ``net`` (method x config)
and, for selections and ranks, ``line`` (net x criterion x resolved options x validation
size x none rule; ``bench.report.procedure``).  Reports pool rows only within a ``line``
and use ``complete(frame)``: incomplete runs are listed, never mixed into a mean.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

import criteria
from bench import score
from bench.atomic import read_json
from bench.errors import UserError
from bench.nb201 import space
from bench.paths import results_dir
from bench.report import procedure
from bench.report.frames import SEARCH, SUPERNET, cell_costs, shown
from bench.runs.runstore import Run, run_state

HESSIAN = "_hessian"
"""Criterion name of selection records that hold a checkpoint's Hessian eigenvalues, not op scores."""
MASKING = ("darts-pt", "darts-pt-oneshot", "darts-pt-proj", "ostr")
"""Criteria that evaluate the mixed supernet through its mixing weights (masks, deleted ops); the
others read alpha or evaluate cells on fixed edges."""


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
    """The commit that created the run (its ``config.json``)."""
    identity: dict = field(default_factory=dict, compare=False)
    """``SearchConfig.identity`` of the run's config (``bench.report.procedure.identity``)."""
    commits: tuple[str, ...] = field(default=(), compare=False)
    """Every commit whose code wrote part of the run (``code_commits``)."""

    @property
    def config_key(self) -> str:
        return procedure.key(self.identity)

    @property
    def procedure(self) -> str:
        """The profile as this run used it (a changed profile says how)."""
        return procedure.describe_profile(self.profile, self.identity)


def experiment_dir(experiment: str | Path) -> Path:
    """``results/<EXP>`` for a name, or the folder itself for a path."""
    path = Path(experiment)
    if not path.is_dir():
        path = results_dir() / str(experiment)
    if not path.is_dir():
        raise UserError(f"No experiment folder {experiment!r} (looked for {path}); run `python -m bench "
                        f"sweep SPEC` or `python -m bench search --experiment NAME` first")
    return path


def runs(experiment: str | Path) -> list[RunInfo]:
    """Every run folder (with a config.json) of an experiment, sorted by name."""
    return [info for info, _, _ in _read_runs(experiment)]


def _read_runs(experiment: str | Path) -> list[tuple[RunInfo, list[dict], list[dict]]]:
    """Every run of an experiment with its epoch and selection records, each file read once."""
    folder = experiment_dir(experiment)
    out = []
    for path in sorted(p for p in folder.iterdir() if (p / "config.json").exists()):
        run = Run(path)
        meta = run.meta()
        cfg = meta["config"]
        epochs, selections = run.epochs(), run.selections()
        info = RunInfo(run=path.name, path=path, method=cfg.get("method", "darts"),
                       profile=meta.get("profile", "custom"), seed=int(meta.get("seed", 0)),
                       state=run_state(path),
                       epochs_done=len(epochs), epochs_total=int(cfg.get("epochs", 0)),
                       benchmark_sha256=meta.get("benchmark", {}).get("sha256", ""),
                       benchmark_source=meta.get("benchmark", {}).get("source", ""),
                       commit=meta.get("commit", "unknown"), identity=procedure.identity(cfg),
                       commits=code_commits(run, meta, epochs + selections))
        out.append((info, epochs, selections))
    if not out:
        raise UserError(f"{folder} holds no run folders (none has a config.json)")
    return out


def code_commits(run: Run, meta: dict, records: list[dict]) -> tuple[str, ...]:
    """Every commit whose code wrote part of a run: the one that created it, and those that
    computed its epochs and selections (``records`` that name one) and finished it."""
    done = run.path / "done"
    finished = [read_json(done).get("commit")] if done.exists() else []
    named = [meta.get("commit"), *finished, *(r.get("commit") for r in records)]
    return tuple(sorted({c for c in named if c}))


def notes(identity: dict, criterion: str) -> str:
    """What a reader must know about a criterion applied to a supernet it was not designed for."""
    if criterion == SEARCH:
        return ""
    out = []
    if identity.get("exclude_none") and criterion != SUPERNET:
        out.append("'none' is not a candidate on this supernet (NAP): per-edge correlations run over 4 ops, "
                   "fewer after pruning")
    if identity.get("method") == "entrannas" and criterion in MASKING:
        out.append("EnTranNAS supernet: the masks reach only the engine cells (transit cells compute the "
                   "derived sub-graph)")
    if identity.get("relaxation") == "gumbel" and criterion in MASKING:
        out.append("EoiNAS checkpoint: the supernet is evaluated at the Gumbel-softmax temperature of its "
                   "epoch, softmax(alpha / tau)")
    return "; ".join(out)


def _base(info: RunInfo) -> dict:
    return {"run": info.run, "method": info.method, "profile": info.profile, "seed": info.seed,
            "state": info.state, "final_epoch": info.epochs_total, "config": info.config_key,
            "procedure": info.procedure}


def needs_data(criterion: str) -> bool:
    """Whether a criterion reads validation data (its validation size is part of its procedure)."""
    try:
        return criteria.entry(criterion).needs_data
    except UserError:
        return True


def resolved_options(criterion: str, options: dict | None) -> dict:
    """A record's options resolved against the criterion's current defaults (so that a record
    written before an option existed pools with one that states its default)."""
    try:
        return criteria.resolve_options(criterion, options or {})
    except UserError:
        return dict(options or {})


def _selection_keys(info: RunInfo, record: dict, criterion: str, source: str) -> dict:
    """The selection fields a row is keyed by: resolved options, validation size (None for a
    criterion that reads no data, 0 for the whole alpha half), none rule; and its notes."""
    own = source in (SEARCH, SUPERNET)
    data = source == SUPERNET or (not own and needs_data(source))
    options = {} if own else resolved_options(source, record.get("options"))
    return {"criterion": criterion, "options": procedure.key(options),
            "valid_size": int(record.get("valid_size") or 0) if data else None,
            "allow_none": bool(record.get("allow_none", True)), "notes": notes(info.identity, source)}


def _selection_row(info: RunInfo, epoch: int, keys: dict, facts: dict, record: dict) -> dict:
    row = {**_base(info), "epoch": epoch, **keys, "cell": facts.get("cell"),
           "parameter_free_ops": facts.get("parameter_free_ops", np.nan),
           "skip_connections": facts.get("skip_connections", np.nan)}
    for metric, value in facts.get("accuracies", {}).items():
        row[f"acc:{metric}"] = value
    if facts.get("cell"):
        row.update(cell_costs(facts["cell"]))
    cost = record.get("cost", {})
    own = keys["criterion"] == SEARCH and "cost" not in record  # a search epoch: its training time
    own_seconds = record.get("seconds", np.nan) if own else np.nan
    row["cost_seconds"] = cost.get("seconds", own_seconds)
    row["cost_epoch_equivalents"] = cost.get("epoch_equivalents", np.nan)
    return row


def _search_cell(record: dict) -> str | None:
    """The search's own cell of an epoch record: the method's derivation when it has one."""
    method = record.get("method")
    if isinstance(method, dict) and method.get("cell"):
        return method["cell"]
    return record.get("cell")


def _search_scores(record: dict) -> tuple[str | None, np.ndarray | None]:
    """(cell, scores whose arch-level tau is the own cell's) of an epoch record.  The method's
    own scores when the record has them (``scores``, or ``method.scores``); else its alpha's
    magnitude scores (``bench.score.magnitude_scores``), which speak for the own cell only when
    that cell is their argmax (a method whose own cell is derived otherwise, in records that
    predate ``method.scores``, gets no tau)."""
    from bench.opscores import from_jsonable

    cell = _search_cell(record)
    method = record.get("method") if isinstance(record.get("method"), dict) else {}
    stored = record.get("scores") if record.get("scores") is not None else method.get("scores")
    if stored is not None:
        scores = from_jsonable(stored)
        return cell or space.to_string(score.derived_cell(scores)), scores
    if record.get("alpha") is None:
        return cell, None
    scores = score.magnitude_scores(record["alpha"], record.get("op_mask"))
    derived = space.to_string(score.derived_cell(scores))
    return (cell or derived), (scores if (cell or derived) == derived else None)


def _count_range(values) -> str:
    values = [int(v) for v in values]
    if not values:
        return ""
    return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"


@dataclass
class _Pending:
    """A record whose rank rows are computed when ``Experiment.ranks`` is first read."""

    base: dict
    record: dict
    scores: np.ndarray | None = None  # a search epoch: protocol 1 of these scores


@lru_cache(maxsize=4096)
def _rank_rows_cached(sha256: str, text: str) -> tuple:
    record = json.loads(text)
    truth = _TRUTHS[sha256]
    if "alpha_scores" in record:
        from bench.opscores import from_jsonable

        tau = score.arch_tau(from_jsonable(record["alpha_scores"]), truth)
        return ({"protocol": "1-arch", "subset": "all", **tau},)
    return tuple(score.score_selection(record, truth).get("rank", []))


_TRUTHS: dict = {}
_SCORED = ("criterion", "scores", "cell", "allow_none", "sample", "measured")
"""The fields of a selection record that its rank rows depend on."""


def _rank_rows(pending: _Pending, truth) -> list[dict]:
    """Rank rows of a record, memoised per (table, record) across loads of one process."""
    from bench.opscores import from_jsonable, to_jsonable

    _TRUTHS[truth.sha256] = truth
    if pending.scores is not None:
        text = json.dumps({"alpha_scores": to_jsonable(pending.scores)})
        scores = pending.scores
    else:  # what score_selection reads: records that differ elsewhere (epoch, cost) share the work
        text = json.dumps({k: pending.record.get(k) for k in _SCORED}, sort_keys=True)
        scores = from_jsonable(pending.record["scores"]) if pending.record.get("scores") else None
    ops = _count_range(np.isfinite(scores).sum(axis=1)) if scores is not None else ""
    out = []
    for r in _rank_rows_cached(truth.sha256, text):
        per_edge = r.get("per_edge_tau")
        edges = int(np.isfinite(np.asarray(per_edge, dtype=float)).sum()) if per_edge is not None else np.nan
        out.append({**pending.base, "protocol": r["protocol"], "subset": r.get("subset", ""),
                    "metric": r.get("metric", ""), "kendall_tau": r.get("kendall_tau", np.nan),
                    "spearman": r.get("spearman", np.nan), "n": r.get("n"), "edges": edges,
                    "ops": ops if per_edge is not None or r["protocol"] == "1-arch" else ""})
    return out


@dataclass
class Experiment:
    """The tidy frames of one experiment, the runs they came from and the table they were scored with."""

    name: str
    path: Path
    runs: list[RunInfo]
    selections: pd.DataFrame
    epochs: pd.DataFrame
    truth: object = None
    pending: list = field(default_factory=list, repr=False)

    @property
    def incomplete_runs(self) -> list[RunInfo]:
        return [r for r in self.runs if r.state != "done"]

    @cached_property
    def ranks(self) -> pd.DataFrame:
        """Protocols 1-4 of every scored record (computed now, against ``truth``)."""
        return pd.DataFrame([row for p in self.pending for row in _rank_rows(p, self.truth)])


def _line_key(row) -> tuple:
    return (row["method"], row["config"], row["criterion"], row["options"], row["valid_size"],
            row["allow_none"])


def load(experiment: str | Path, truth) -> Experiment:
    """Read every run of an experiment and score it against ``truth`` (a ``GroundTruth``)."""
    from bench.search.methods import METHODS

    read = _read_runs(experiment)
    infos = [info for info, _, _ in read]
    sel_rows: list[dict] = []
    pending: list[_Pending] = []
    epoch_rows: list[dict] = []
    hessian: dict[tuple[str, int], float] = {}
    for info, epoch_records, selection_records in read:
        method = METHODS.get(info.method)
        own_criterion = method.cell_criterion if method is not None else None
        for rec in epoch_records:
            epoch = int(rec["epoch"])
            if own_criterion is None:  # else the method's cell is a criterion's: taken from selections below
                cell, scores = _search_scores(rec)
                if cell is not None:
                    keys = _selection_keys(info, rec, SEARCH, SEARCH)
                    sel_rows.append(_selection_row(info, epoch, keys, score.cell_facts(cell, truth), rec))
                    if scores is not None:
                        pending.append(_Pending({**_base(info), "epoch": epoch, **keys}, rec, scores))
            weights = rec.get("weights")
            epoch_rows.append({**_base(info), "epoch": epoch, "valid_acc": rec.get("valid_acc", np.nan),
                               "valid_loss": rec.get("valid_loss", np.nan),
                               "train_acc": rec.get("train_acc", np.nan),
                               "seconds": rec.get("seconds", np.nan),
                               "peak_memory_mb": rec.get("peak_memory_mb", np.nan),
                               "hessian_eigenvalue": (rec.get("hessian") or {}).get("eigenvalue", np.nan),
                               "weights": np.asarray(weights, dtype=float) if weights is not None else None})
        for rec in selection_records:
            epoch, criterion = int(rec["epoch"]), rec["criterion"]
            if criterion == HESSIAN or "scores" not in rec and "sample" not in rec:
                if (rec.get("hessian") or {}).get("eigenvalue") is not None:
                    hessian[(info.run, epoch)] = float(rec["hessian"]["eigenvalue"])
                continue
            keys = _selection_keys(info, rec, criterion, criterion)
            pending.append(_Pending({**_base(info), "epoch": epoch, **keys}, rec))
            if criterion == SUPERNET:
                continue
            facts = score.score_selection(rec, None)  # the chosen cell; its accuracies below
            facts = score.cell_facts(facts["cell"], truth)
            sel_rows.append(_selection_row(info, epoch, keys, facts, rec))
            if criterion == own_criterion:  # its ranks stay under the criterion
                sel_rows.append(_selection_row(info, epoch, {**keys, "criterion": SEARCH}, facts, rec))
    epochs = _with_hessian(pd.DataFrame(epoch_rows), hessian)
    selections = pd.DataFrame(sel_rows)
    labels = _labels(infos, [_line_key(r) for r in sel_rows] + [_line_key(p.base) for p in pending])
    nets = _net_labels(infos)
    for frame in (selections, epochs):
        if not frame.empty:
            frame["net"] = [nets[(m, c)] for m, c in zip(frame["method"], frame["config"])]
    if not selections.empty:
        selections["line"] = [labels[_line_key(r)] for r in sel_rows]
    for p in pending:
        p.base.update(net=nets[(p.base["method"], p.base["config"])], line=labels[_line_key(p.base)])
    return Experiment(name=Path(experiment).name, path=experiment_dir(experiment), runs=infos,
                      selections=selections, epochs=epochs, truth=truth, pending=pending)


def _with_hessian(epochs: pd.DataFrame, hessian: dict) -> pd.DataFrame:
    """Eigenvalues logged by ``select`` fill the epochs whose record holds none."""
    if epochs.empty or not hessian:
        return epochs
    logged = [hessian.get((run, int(e)), np.nan) for run, e in zip(epochs["run"], epochs["epoch"])]
    logged = pd.Series(logged, index=epochs.index)
    epochs["hessian_eigenvalue"] = epochs["hessian_eigenvalue"].astype(float).fillna(logged)
    return epochs


def _net_labels(infos: list[RunInfo]) -> dict[tuple[str, str], str]:
    """``method`` or ``method [C=4]``: per method, the config fields in which its runs differ."""
    out = {}
    for method in sorted({r.method for r in infos}):
        configs = {r.config_key: r.identity for r in infos if r.method == method}
        differ = procedure.differing(list(configs.values()))
        for k, ident in configs.items():
            out[(method, k)] = f"{method} [{procedure.fields_text(ident, differ)}]" if differ else method
    return out


def _labels(infos: list[RunInfo], keys: list[tuple]) -> dict[tuple, str]:
    """A readable, unique label per line key: the net, the criterion and the selection fields
    in which lines of the same net and criterion differ."""
    nets = _net_labels(infos)
    groups: dict[tuple, list[tuple]] = {}
    for k in dict.fromkeys(keys):
        groups.setdefault(k[:3], []).append(k)
    out = {}
    for (method, config, criterion), members in groups.items():
        fields = [{**json.loads(k[3]), "valid_size": k[4], "allow_none": k[5]} for k in members]
        differ = procedure.differing(fields)
        for k, f in zip(members, fields):
            label = f"{nets[(method, config)]} / {shown(criterion)}"
            out[k] = label + (f" [{procedure.fields_text(f, differ)}]" if differ else "")
    return out
