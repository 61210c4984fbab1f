"""``python -m bench select``: apply criteria to a run's checkpoints and log what they produced.

For every chosen epoch (with a verified checkpoint, or 0 = the initialisation) and criterion:
the op-score matrix, the derived cell, the criterion's own measurements (``info``), its
resolved options, the none rule, the validation size and the cost (wall seconds, supernet
forward passes, images, peak memory, training-epoch equivalents), appended to
``selections.jsonl`` in the run folder.  Nothing is scored here: accuracies and rank
correlations are computed at read time (``bench.score``) against the table a reader names.
A record is keyed by everything that changes it (``selection_key``): pairs already logged
under the same key are skipped, so a kill loses at most the pair in progress, and a request
with other options lives beside the earlier one.  Protocol 4 (``--supernet-tau N``): a
fixed, seeded sample of N cells evaluated inside each chosen checkpoint, logged once per
epoch with ``criterion = "_supernet"`` (their measured accuracies; correlated at read time).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import criteria
from bench import data as data_mod
from bench import device as device_mod
from bench import score
from bench.atomic import append_jsonl
from bench.errors import UserError
from bench.nb201 import space
from bench.nets.evaluate import evaluate
from bench.nets.hessian import collapse_indicator
from bench.opscores import to_jsonable
from bench.paths import default_data_dir
from bench.runs import records
from bench.runs.checkpoints import INITIALISATION, load_supernet
from bench.runs.records import HESSIAN, SUPERNET, valid_size_for
from bench.runs.runstore import Run, git_commit, run_lock

INITIALISATION_NAME = "init"

def parse_epochs(spec: str, available: list[int]) -> list[int]:
    """``all``, ``last``, ``every:K`` (every K-th plus the last) or a comma list of epochs, each
    once; 0 (the initialisation, recreated from the seed) only when named."""
    if spec.strip() in ("0", INITIALISATION_NAME):
        return [INITIALISATION]
    if not available:
        return []
    if spec == "all":
        return available
    if spec == "last":
        return available[-1:]
    if spec.startswith("every:"):
        try:
            k = int(spec.split(":", 1)[1])
            if k <= 0:
                raise ValueError
        except ValueError:
            raise UserError(f"--epochs {spec!r}: every:K needs a positive integer K") from None
        return sorted({e for e in available if e % k == 0} | {available[-1]})
    try:
        wanted = [INITIALISATION if v.strip() == INITIALISATION_NAME else int(v) for v in spec.split(",")]
    except ValueError:
        raise UserError(f"--epochs {spec!r} must be all, last, every:K or a comma list of epochs "
                        f"(0 = the initialisation)") from None
    missing = [e for e in wanted if e not in available and e != INITIALISATION]
    if missing:
        raise UserError(f"--epochs: no checkpoint for {missing}; this run has checkpoints for {available} "
                        f"(and 0, the initialisation)")
    return list(dict.fromkeys(wanted))


def parse_criteria(spec: str) -> list[str]:
    """``all`` (every criterion that does not fine-tune) or a comma list, each name once."""
    names = criteria.names() if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UserError(f"--criteria {spec!r} names no criterion; give all or a comma list of "
                        f"{', '.join(criteria.names())}")
    for name in names:
        criteria.entry(name)
    if spec == "all":
        names = [n for n in names if n != "darts-pt-proj"]  # fine-tunes the supernet: ask for it by name
    return list(dict.fromkeys(names))


def parse_options(items: list[str]) -> dict[str, dict]:
    """``criterion.key=value`` strings -> {criterion: {key: value}} (validated later)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, option = key.partition(".")
        if not sep or not dot:
            raise UserError(f"--option {item!r} must be criterion.key=value, e.g. darts-pt.bn_mode=eval")
        criteria.entry(name)
        out.setdefault(name, {})[option] = value
    for name, options in out.items():
        criteria.resolve_options(name, options)  # unknown keys and wrong types fail here, before any work
    return out


def selection_key(record: dict) -> str:
    """``bench.runs.records.selection_key`` with the criterion's ``needs_data`` from the registry
    (a criterion no longer registered counts as reading data)."""
    name = record["criterion"]
    return records.selection_key(record, name not in criteria.names() or criteria.entry(name).needs_data)


class ForwardCounter:
    """Counts supernet forward passes and images through a forward pre-hook."""

    def __init__(self, net: torch.nn.Module):
        self.passes = 0
        self.images = 0
        self._handle = net.register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.passes += 1
        self.images += int(args[0].shape[0])

    def close(self) -> None:
        self._handle.remove()


def supernet_sample(n: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded sample of n cell codes with an input-output path (the same for every run)."""
    rng = np.random.default_rng(seed)
    alive = np.array([space.has_path(tuple(c)) for c in space.all_cells()])
    return np.sort(rng.choice(np.flatnonzero(alive), size=n, replace=False))


def planned(epochs: list[int], names: list[str], options: dict[str, dict] | None, valid_size: int | None,
            allow_none: bool, supernet_tau: int, hessian: bool = False) -> list[dict]:
    """The record identities a request asks for, in order, each once (before any work)."""
    out = []
    for epoch in epochs:
        for name in names:
            out.append({"epoch": epoch, "criterion": name,
                        "options": criteria.resolve_options(name, (options or {}).get(name)),
                        "allow_none": allow_none, "valid_size": valid_size_for(name, valid_size)})
        if supernet_tau:
            out.append({"epoch": epoch, "criterion": SUPERNET, "sample": [0] * supernet_tau,
                        "valid_size": valid_size_for(SUPERNET, valid_size)})
        if hessian:
            out.append({"epoch": epoch, "criterion": HESSIAN,
                        "valid_size": valid_size_for(HESSIAN, valid_size)})
    unique = {selection_key(job): job for job in out}
    return list(unique.values())


def apply(run: Run, names: list[str], epochs: list[int], options: dict[str, dict] | None = None,
          valid_size: int | None = None, allow_none: bool = True, supernet_tau: int = 0,
          data_dir: str | Path | None = None, device: str | None = None, progress: bool = True,
          hessian: bool = False) -> list[dict]:
    """Apply ``names`` to the checkpoints of ``epochs``; returns the records written now.
    ``valid_size``: validation images per evaluation, 0 = the whole alpha half, None = each
    criterion's default (``valid_size_for``).  ``hessian``: also log the collapse indicator
    (dominant alpha-Hessian eigenvalue, ``bench.nets.hessian``) per epoch, as criterion ``_hessian``.

    Holds ``RUN/.select.lock``: a second ``select`` on the same run is refused (a search may
    go on writing checkpoints meanwhile)."""
    if supernet_tau and not 1 < supernet_tau <= len(space.all_cells()):
        raise UserError(f"--supernet-tau {supernet_tau}: the sample needs 2 to 15625 cells "
                        f"(0 = no protocol 4)")
    jobs = planned(epochs, names, options, valid_size, allow_none, supernet_tau, hessian)
    with run_lock(run.path, ".select.lock") as mine:
        if not mine:
            raise UserError(f"Another `select` is writing {run.path / 'selections.jsonl'}; "
                            f"wait for it to finish (pairs it completes are skipped when you rerun)")
        return _apply(run, jobs, supernet_tau, data_dir, device, progress)


def _apply(run: Run, jobs: list[dict], supernet_tau: int, data_dir, device, progress) -> list[dict]:
    meta = run.meta()
    cfg = run.config()
    done = {selection_key(r) for r in run.selections()}
    jobs = [job for job in jobs if selection_key(job) not in done]
    if not jobs:
        return []
    dev = device_mod.choose(device)
    root = Path(data_dir) if data_dir else Path(meta["data"].get("root") or default_data_dir())
    data = data_mod.load_search_data(root, dev, cfg.weight_size, cfg.alpha_size, split_seed=meta["seed"])
    run.check_inputs(train_sha256=data.train_sha256)
    epoch_seconds = [r["seconds"] for r in run.epochs() if isinstance(r.get("seconds"), (int, float))]
    epoch_seconds = float(np.median(epoch_seconds)) if epoch_seconds else float("nan")
    path = run.path / "selections.jsonl"
    written = []
    from tqdm import tqdm

    for job in tqdm(jobs, desc="select", unit="pair", disable=not progress):
        epoch, name = job["epoch"], job["criterion"]
        device_mod.peak_memory_reset(dev)
        net, state = load_supernet(run, epoch, dev, with_state=True)
        counter = ForwardCounter(net)
        began = time.perf_counter()
        if name == SUPERNET:
            record = _supernet_record(net, data, supernet_tau, job["valid_size"])
        elif name == HESSIAN:
            record = {"hessian": collapse_indicator(net, data, job["valid_size"], meta["seed"])}
        else:
            context = criteria.Context(data=data, seed=meta["seed"], options=job["options"],
                                       valid_size=job["valid_size"], search_config=cfg, checkpoint=state)
            scores = criteria.compute(name, net, context, owned=True)
            cell = score.derived_cell(scores, job["allow_none"])
            record = {"scores": to_jsonable(scores), "cell": space.to_string(cell),
                      "options": context.options, "info": context.info, "allow_none": job["allow_none"]}
        seconds = time.perf_counter() - began
        counter.close()
        record.update({"epoch": epoch, "criterion": name, "valid_size": job["valid_size"],
                       "cost": {"seconds": round(seconds, 3), "forward_passes": counter.passes,
                                "images": counter.images,
                                "peak_memory_mb": round(device_mod.peak_memory_mb(dev), 1),
                                "epoch_equivalents": round(seconds / epoch_seconds, 4)}})
        record["key"] = selection_key(record)
        record["commit"] = git_commit()
        append_jsonl(path, record)
        written.append(record)
    return written


def _supernet_record(net, data, n: int, valid_size: int | None) -> dict:
    """Protocol 4: each sampled cell evaluated inside the supernet (edges fixed, BN train mode);
    the measured accuracies are stored, their correlation is computed at read time."""
    from bench.data import fixed_batches

    batches = fixed_batches(data.alpha, valid_size)
    codes = supernet_sample(n)
    measured = []
    for code in codes:
        net.fixed = list(space.from_code(int(code)))
        measured.append(evaluate(net, batches, "train").accuracy)
    return {"sample": codes.tolist(), "measured": measured}
