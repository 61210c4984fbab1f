"""One search run end to end: config -> data -> supernet search -> checkpoints and epoch records.

``run_search`` trains the supernet into the run store (one ``bench.search.loop.train_epoch`` per
epoch, a checkpoint and a record after each, resumed from the last good checkpoint); ``search``
adds the data, the lock and the run's ``config.json``.

This is the function behind ``python -m bench search`` and ``make demo``; sweeps call it too.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench import data as data_mod
from bench import device as device_mod
from bench import score
from bench.errors import UserError
from bench.nb201 import space
from bench.nets.hessian import collapse_indicator
from bench.nets.supernet import Supernet
from bench.opscores import to_jsonable
from bench.paths import default_data_dir
from bench.runs.checkpoints import build_supernet
from bench.runs.runstore import Run, busy_error, environment, run_lock
from bench.search import methods as methods_mod
from bench.search.config import SearchConfig
from bench.search.loop import train_epoch
from bench.search.steps import make_optimizers

EpochHook = Callable[[dict], None]


def magnitude_description(net: Supernet) -> dict:
    """Per-epoch annotation: the magnitude cell (argmax alpha per edge, ``none`` allowed).
    Its accuracies and tau are computed at read time (``bench.score.score_epoch``)."""
    cell = score.derived_cell(
        score.magnitude_scores(net.alpha.detach().cpu().numpy(), net.op_mask.cpu().numpy())
    )
    return {"cell": space.to_string(cell)}


def _apply_hyperparameters(w_opt, a_opt, cfg: SearchConfig) -> None:
    """The config's optimiser settings over those stored in a checkpoint (identical on a plain resume)."""
    for group in w_opt.param_groups:
        group.update(momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    for group in a_opt.param_groups:
        group.update(
            lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2), weight_decay=cfg.a_weight_decay, eps=cfg.a_eps
        )


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def run_search(
    cfg: SearchConfig,
    seed: int,
    run: Run,
    data: data_mod.SearchData,
    device: torch.device,
    describe_epoch: Callable[[Supernet], dict] | None = None,
    hooks: list[EpochHook] | None = None,
    progress: bool = True,
    resume: bool = True,
) -> Supernet:
    """Train the supernet, writing the run store; continues from the last good checkpoint."""
    device_mod.make_deterministic(device)
    device_mod.peak_memory_reset(device)
    net = build_supernet(cfg, seed, device, compile=True)
    method = methods_mod.get(cfg, seed)
    method.setup(net)
    w_opt, a_opt = make_optimizers(net, cfg)
    start = 0
    last = run.last_good_checkpoint() if resume else None
    if last is not None:
        epoch, _ = last
        state = run.verified_checkpoint(epoch, device)
        net.load_state_dict(state["model"])
        net.load_arch_state(state["arch_state"])
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        _apply_hyperparameters(w_opt, a_opt, cfg)  # a restart may lower them (--restart-from)
        _set_rng_state(state["rng"])
        method.load_state_dict(state.get("method", {}))
        start = epoch
    run.truncate_after(start)
    from tqdm import tqdm

    for epoch in tqdm(
        range(start, cfg.epochs),
        desc="search",
        unit="epoch",
        disable=not progress,
        initial=start,
        total=cfg.epochs,
    ):
        began = time.perf_counter()
        started = method.start_epoch(net, epoch)
        stats = train_epoch(net, w_opt, a_opt, cfg, data, seed, epoch, progress, method)
        ended, reset_alpha_optimizer = method.end_epoch(net, epoch)
        if reset_alpha_optimizer:  # EoiNAS re-creates Adam after pruning (state reset)
            _, a_opt = make_optimizers(net, cfg)
        record = {
            "epoch": epoch + 1,
            **stats,
            "seconds": round(time.perf_counter() - began, 3),
            "peak_memory_mb": round(device_mod.peak_memory_mb(device), 1),
            "alpha": net.alpha.detach().cpu().tolist(),
            "weights": net.arch_weights().detach().cpu().tolist(),
            "op_mask": net.op_mask.cpu().tolist(),
            "method": {"name": cfg.method, **started, **ended},
        }
        if describe_epoch is not None:
            record.update(describe_epoch(net))
        if cfg.hessian_every and (epoch + 1) % cfg.hessian_every == 0:
            record["hessian"] = collapse_indicator(net, data, cfg.hessian_images, seed)
        method_scores = method.scores(net)
        if method_scores is not None:
            record["method"]["scores"] = to_jsonable(method_scores)
            record["method"]["cell"] = space.to_string(space.select_cell(method_scores))
        state = {
            "model": net.state_dict(),
            "arch_state": net.arch_state(),
            "w_opt": w_opt.state_dict(),
            "a_opt": a_opt.state_dict(),
            "rng": _rng_state(),
            "epoch": epoch + 1,
            "config_digest": cfg.digest(),
            "seed": seed,
            "method": method.state_dict(),
        }
        record["checkpoint"] = run.save_checkpoint(epoch + 1, state, cfg.checkpoint_every)
        run.log_epoch(record)
        for hook in hooks or []:
            hook(record)
    return net


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

    Holds the run folder's lock (``bench.runs.runstore.run_lock``) unless ``lock=False`` (the
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
