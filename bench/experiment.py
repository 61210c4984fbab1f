"""One search run end to end: config -> data -> supernet search -> magnitude cell -> ground truth.

This is the function behind ``python -m bench search`` and ``make demo``; sweeps call it too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

import criteria
from bench import benchmark as benchmark_mod
from bench import data as data_mod
from bench import device as device_mod
from bench import space, stats
from bench.config import SearchConfig
from bench.paths import default_data_dir
from bench.runstore import Run, environment
from bench.search import run_search
from bench.supernet import Supernet

REPORTED_METRICS = ("cifar10_test", "cifar100_test", "ImageNet16-120_test", "cifar10-valid_valid")


def cell_accuracies(truth: benchmark_mod.GroundTruth, cell) -> dict[str, float]:
    """The reported metrics of a cell that the benchmark source has."""
    return truth.lookup(cell, [m for m in REPORTED_METRICS if m in truth.metrics])


def magnitude_description(truth: benchmark_mod.GroundTruth | None) -> Callable[[Supernet], dict]:
    """Per-epoch annotation: magnitude scores, derived cell, its ground truth and arch-level tau."""

    def describe(net: Supernet) -> dict:
        scores = criteria.compute("magnitude", net)
        cell = space.select_cell(scores)
        out: dict = {"cell": space.to_string(cell), "parameter_free_ops": space.count_parameter_free(cell)}
        if truth is not None:
            out["cell_index"] = truth.benchmark_index(cell)
            out["accuracies"] = cell_accuracies(truth, cell)
            metric = benchmark_mod.DEFAULT_METRIC if benchmark_mod.DEFAULT_METRIC in truth.metrics else truth.metric_names[0]
            row = stats.arch_level(scores, truth.metric(metric), metric)[0]
            out["tau_arch"] = {"metric": metric, "kendall_tau": row["kendall_tau"], "spearman": row["spearman"]}
        return out

    return describe


def search(profile: str, cfg: SearchConfig, seed: int, experiment: str = "default", data_dir: str | Path | None = None,
           benchmark: str | Path | None = None, device: str | None = None, resume: bool = True,
           progress: bool = True, hooks=None, run: Run | None = None) -> Run:
    """Run (or resume, or skip if complete) one search; returns its run folder."""
    run = run or Run.for_config(experiment, cfg, seed, profile)
    if run.is_done:
        return run
    dev = device_mod.choose(device)
    truth = benchmark_mod.load_cached(benchmark)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    data = data_mod.load_search_data(root, dev, cfg.weight_size, cfg.alpha_size, split_seed=seed)
    run.start({"config": cfg.to_dict(), "seed": seed, "profile": profile, "experiment": experiment,
               "device": str(dev), "benchmark": {"source": truth.source, "sha256": truth.sha256},
               "data": {"root": str(root), "weight_size": cfg.weight_size, "alpha_size": cfg.alpha_size},
               "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **environment()})
    try:
        net = run_search(cfg, seed, run, data, dev, describe_epoch=magnitude_description(truth), hooks=hooks,
                         progress=progress, resume=resume)
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt):
            run.mark_failed(err)
        raise
    final = run.epochs()[-1]
    run.mark_done({"cell": final.get("cell"), "epochs": cfg.epochs,
                   "alpha_finite": bool(np.isfinite(net.alpha.detach().cpu().numpy()).all())})
    return run
