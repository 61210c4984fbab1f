"""One search run end to end: config -> data -> supernet search -> checkpoints and epoch records.

This is the function behind ``python -m bench search`` and ``make demo``; sweeps call it too.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench import data as data_mod
from bench import device as device_mod
from bench import score, space
from bench.config import SearchConfig
from bench.errors import UserError
from bench.paths import default_data_dir
from bench.runstore import Run, busy_error, environment, run_lock
from bench.search import run_search
from bench.supernet import Supernet

def magnitude_description(net: Supernet) -> dict:
    """Per-epoch annotation: the magnitude cell (argmax alpha per edge, ``none`` allowed).
    Its accuracies and tau are computed at read time (``bench.score.score_epoch``)."""
    cell = score.derived_cell(
        score.magnitude_scores(net.alpha.detach().cpu().numpy(), net.op_mask.cpu().numpy())
    )
    return {"cell": space.to_string(cell)}


def search(
    profile: str,
    cfg: SearchConfig,
    seed: int,
    experiment: str = "default",
    data_dir: str | Path | None = None,
    device: str | None = None,
    resume: bool = True,
    progress: bool = True,
    hooks=None,
    run: Run | None = None,
    lock: bool = True,
    restart_from: str | Path | None = None,
) -> Run:
    """Run (or resume, or skip if complete) one search; returns its run folder.

    Holds the run folder's lock (``bench.runstore.run_lock``) unless ``lock=False`` (the
    caller holds it); a second process on the same run is refused, never interleaved.
    ``restart_from``: another run folder whose last good checkpoint (and the epoch records up
    to it) seed this new run, e.g. to go on with a lower learning rate after a NaN."""
    run = run or Run.for_config(experiment, cfg, seed, profile)
    if run.is_done:
        return run
    args = (profile, cfg, seed, experiment, data_dir, device, resume, progress, hooks, run, restart_from)
    if not lock:
        return _search(*args)
    with run_lock(run.path) as mine:
        if not mine:
            raise busy_error(run.path)
        return _search(*args)


def seed_from_checkpoint(run: Run, source: Run) -> None:
    """Copy ``source``'s last good checkpoint and its epoch records into the new ``run``."""
    import shutil

    from bench.atomic import write_atomic

    last = source.last_good_checkpoint()
    if last is None:
        raise UserError(f"{source.path} has no intact checkpoint to restart from")
    epoch, path = last
    source.verified_checkpoint(epoch)  # never copy a checkpoint that is not the source run's own
    run.path.mkdir(parents=True, exist_ok=True)
    target = run.checkpoint_file(epoch)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as checkpoint:
        write_atomic(target, lambda handle: shutil.copyfileobj(checkpoint, handle))
    digest = source.config().digest()
    for record in source.epochs():
        if record["epoch"] <= epoch:
            run.log_epoch({**record, "restarted_from": str(source.path), "origin_digest": digest})


def _search(
    profile, cfg, seed, experiment, data_dir, device, resume, progress, hooks, run, restart_from=None
) -> Run:
    if restart_from is not None and not run.epochs():
        seed_from_checkpoint(run, Run.open(restart_from))
        resume = True
    dev = device_mod.choose(device)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    data = data_mod.load_search_data(root, dev, cfg.weight_size, cfg.alpha_size, split_seed=seed)
    run.check_inputs(train_sha256=data.train_sha256)
    restarted_from = next((r["restarted_from"] for r in run.epochs() if "restarted_from" in r), None)
    origin = {"restarted_from": restarted_from} if restarted_from else {}  # the seeded records say where from
    run.start(
        {
            **origin,
            "config": cfg.to_dict(),
            "seed": seed,
            "profile": profile,
            "experiment": experiment,
            "device": str(dev),
            "data": {
                "source": data_mod.SOURCE,
                "weight_size": cfg.weight_size,
                "alpha_size": cfg.alpha_size,
                "train_sha256": data.train_sha256,
            },
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **environment(),
        }
    )
    try:
        net = run_search(
            cfg,
            seed,
            run,
            data,
            dev,
            describe_epoch=magnitude_description,
            hooks=hooks,
            progress=progress,
            resume=resume,
        )
    except BaseException as err:
        if not isinstance(err, KeyboardInterrupt):
            run.mark_failed(err)
        raise
    final = run.epochs()[-1]
    run.mark_done(
        {
            "cell": final.get("cell"),
            "epochs": cfg.epochs,
            "alpha_finite": bool(np.isfinite(net.alpha.detach().cpu().numpy()).all()),
        }
    )
    return run
