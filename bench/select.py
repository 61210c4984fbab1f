"""``python -m bench select``: apply criteria to a run's checkpoints and log the results.

For every chosen epoch (with a checkpoint) and criterion: the op-score matrix, the derived
cell, its ground-truth accuracies, the rank-correlation numbers of protocols 1-3
(``bench.stats.rank_report``) and the cost (wall seconds, supernet forward passes, images,
peak memory, training-epoch equivalents), appended to ``selections.jsonl`` in the run
folder.  Pairs already there are skipped, so a kill loses at most the pair in progress.
Protocol 4 (``--supernet-tau N``): a fixed, seeded sample of N cells evaluated inside each
chosen checkpoint, logged once per epoch with ``criterion = "_supernet"``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

import criteria
from bench import benchmark as benchmark_mod
from bench import data as data_mod
from bench import device as device_mod
from bench import space, stats
from bench.atomic import append_jsonl, read_jsonl
from bench.errors import UserError
from bench.evaluate import evaluate
from bench.experiment import cell_accuracies
from bench.opscores import to_jsonable
from bench.runstore import Run, run_lock
from bench.search import load_supernet

SUPERNET = "_supernet"


def parse_epochs(spec: str, available: list[int]) -> list[int]:
    """``all``, ``last``, ``every:K`` (every K-th plus the last) or a comma list of epochs."""
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
        wanted = [int(v) for v in spec.split(",")]
    except ValueError:
        raise UserError(f"--epochs {spec!r} must be all, last, every:K or a comma list of epochs") from None
    missing = [e for e in wanted if e not in available]
    if missing:
        raise UserError(f"--epochs: no checkpoint for {missing}; this run has checkpoints for {available}")
    return wanted


def parse_criteria(spec: str) -> list[str]:
    names = criteria.names() if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        criteria.entry(name)
    if spec == "all":
        names = [n for n in names if n != "darts-pt-proj"]  # fine-tunes the supernet: ask for it by name
    return names


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


def apply(run: Run, names: list[str], epochs: list[int], options: dict[str, dict] | None = None,
          valid_size: int | None = 2000, allow_none: bool = True, supernet_tau: int = 0,
          data_dir: str | Path | None = None, benchmark: str | Path | None = None, device: str | None = None,
          progress: bool = True) -> list[dict]:
    """Apply ``names`` to the checkpoints of ``epochs``; returns the records written now.

    Holds ``RUN/.select.lock``: a second ``select`` on the same run is refused (a search may
    go on writing checkpoints meanwhile)."""
    with run_lock(run.path, ".select.lock") as mine:
        if not mine:
            raise UserError(f"Another `select` is writing {run.path / 'selections.jsonl'}; wait for it to finish "
                            f"(pairs it completes are skipped when you rerun)")
        return _apply(run, names, epochs, options, valid_size, allow_none, supernet_tau, data_dir, benchmark, device,
                      progress)


def _apply(run, names, epochs, options, valid_size, allow_none, supernet_tau, data_dir, benchmark, device,
           progress) -> list[dict]:
    meta = run.meta()
    cfg = run.config()
    dev = device_mod.choose(device)
    truth = benchmark_mod.load_cached(benchmark or meta.get("benchmark", {}).get("source"))
    run.check_inputs(benchmark_sha256=truth.sha256)
    root = Path(data_dir) if data_dir else Path(meta["data"]["root"])
    data = data_mod.load_search_data(root, dev, cfg.weight_size, cfg.alpha_size, split_seed=meta["seed"])
    run.check_inputs(train_sha256=data.train_sha256)
    epoch_seconds = float(np.median([r["seconds"] for r in run.epochs()])) if run.epochs() else float("nan")
    truths = {m: truth.metric(m) for m in benchmark_mod.HEADLINE_METRICS if m in truth.metrics}
    path = run.path / "selections.jsonl"
    done = {(r["epoch"], r["criterion"]) for r in read_jsonl(path)}
    jobs = [(e, n) for e in epochs for n in names + ([SUPERNET] if supernet_tau else []) if (e, n) not in done]
    written = []
    from tqdm import tqdm

    for epoch, name in tqdm(jobs, desc="select", unit="pair", disable=not progress):
        device_mod.peak_memory_reset(dev)
        net, state = load_supernet(run, epoch, dev, with_state=True)
        counter = ForwardCounter(net)
        began = time.perf_counter()
        if name == SUPERNET:
            record = _supernet_record(net, data, truth, supernet_tau, valid_size)
        else:
            context = criteria.Context(data=data, seed=meta["seed"], options=(options or {}).get(name, {}),
                                       valid_size=valid_size, search_config=cfg, checkpoint=state)
            scores = criteria.compute(name, net, context)
            cell = space.select_cell(scores, allow_none=allow_none)
            rows = stats.rank_report(scores, truths, derived=cell) if truths else []
            record = {"scores": to_jsonable(scores), "cell": space.to_string(cell),
                      "cell_index": truth.benchmark_index(cell), "accuracies": cell_accuracies(truth, cell),
                      "parameter_free_ops": space.count_parameter_free(cell), "rank": rows,
                      "options": context.options, "info": context.info, "allow_none": allow_none}
        seconds = time.perf_counter() - began
        counter.close()
        record.update({"epoch": epoch, "criterion": name, "valid_size": valid_size,
                       "cost": {"seconds": round(seconds, 3), "forward_passes": counter.passes,
                                "images": counter.images, "peak_memory_mb": round(device_mod.peak_memory_mb(dev), 1),
                                "epoch_equivalents": round(seconds / epoch_seconds, 4)}})
        append_jsonl(path, record)
        written.append(record)
    return written


def _supernet_record(net, data, truth, n: int, valid_size: int | None) -> dict:
    """Protocol 4: each sampled cell evaluated inside the supernet (edges fixed, BN train mode)."""
    from bench.evaluate import fixed_batches

    batches = fixed_batches(data.alpha, valid_size)
    codes = supernet_sample(n)
    measured = []
    for code in codes:
        net.fixed = list(space.from_code(int(code)))
        measured.append(evaluate(net, batches, "train").accuracy)
    out = {"sample": codes.tolist(), "measured": measured, "rank": []}
    for metric in benchmark_mod.HEADLINE_METRICS:
        if metric in truth.metrics:
            out["rank"].append(stats.supernet_level(measured, truth.metric(metric)[codes], metric))
    return out


def selections(run: Run) -> list[dict]:
    return read_jsonl(run.path / "selections.jsonl")
