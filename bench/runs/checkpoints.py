"""Supernets from a run: the network a config describes (``build_supernet``) and a run's verified
checkpoint loaded into it (``load_supernet``; epoch 0 = the initialisation, recreated from the
seed).  Every reader of checkpoints (``select``, ``show``, the notebooks) comes through here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from bench import device as device_mod
from bench.errors import UserError
from bench.nets.entrannas import EnTranSupernet
from bench.nets.supernet import Supernet
from bench.search import methods as methods_mod

if TYPE_CHECKING:
    from bench.runs.runstore import Run
    from bench.search.config import SearchConfig

INITIALISATION = 0
"""The epoch number of the supernet before any training step (recreated from the seed)."""


def build_supernet(cfg: SearchConfig, seed: int, device: torch.device, compile: bool = False) -> Supernet:
    """The config's supernet on ``device`` in the layout ``device.supernet_layout`` picks.
    ``compile``: let its training forwards go through ``torch.compile`` where the layout says
    it pays (the search asks for it; criteria, which run many op patterns once each, do not)."""
    torch.manual_seed(seed)
    if cfg.method == "entrannas":
        net = EnTranSupernet(C=cfg.C, N=cfg.N, num_classes=cfg.num_classes, affine=cfg.affine,
                             track_running_stats=cfg.track_running_stats, relaxation=cfg.relaxation,
                             engine_cells=cfg.engine_cells, dst=cfg.dst)
        net.relaxation.temperature = cfg.engine_temperature
    else:
        net = Supernet(C=cfg.C, N=cfg.N, num_classes=cfg.num_classes, affine=cfg.affine,
                       track_running_stats=cfg.track_running_stats, relaxation=cfg.relaxation,
                       implementation=cfg.implementation)
    net.precision = cfg.precision
    layout = device_mod.supernet_layout(device, cfg.C)
    return net.to(device).use_layout(layout.memory_format, layout.fuse_convs, compile and layout.compile)


def checkpoint_epochs(run: Run) -> list[int]:
    """Epochs whose checkpoint file is still on disk."""
    return sorted(r["epoch"] for r in run.epochs() if r.get("checkpoint") and run.checkpoint_path(r).exists())


def load_supernet(
    run: Run, epoch: int | None = None, device: torch.device | None = None, with_state: bool = False
):
    """Rebuild a run's supernet from the checkpoint of ``epoch`` (default: the last one);
    ``with_state`` also returns the whole checkpoint (optimiser states, RNG).
    Epoch 0 is the initialisation, recreated from the seed (``build_supernet`` seeds the
    construction; the method's set-up applied), with no optimiser state.  Every other
    checkpoint is verified first (``Run.verified_checkpoint``)."""
    device = device or device_mod.choose()
    cfg = run.config()
    seed = run.meta()["seed"]
    available = checkpoint_epochs(run)
    epoch = (available[-1] if available else None) if epoch is None else epoch
    if epoch is None:
        raise UserError(f"{run.path} has no checkpoint yet")
    net = build_supernet(cfg, seed, device)
    method = methods_mod.get(cfg, seed)
    if epoch == INITIALISATION:
        method.setup(net)
        method.restore(net, 0, None)
        return (net, {"epoch": 0, "seed": seed, "config_digest": cfg.digest()}) if with_state else net
    if epoch not in available:
        raise UserError(
            f"{run.path} has no checkpoint for epoch {epoch}; it has {[0] + available} (0 = initialisation)"
        )
    state = run.verified_checkpoint(epoch, device)
    try:
        net.load_state_dict(state["model"])
        net.load_arch_state(state["arch_state"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"Checkpoint of epoch {epoch} in {run.path} does not fit the run's supernet "
            f"({type(err).__name__}); restore the run's own file"
        ) from None
    method.restore(
        net, epoch, next((r for r in run.epochs() if r["epoch"] == epoch), None)
    )  # e.g. EoiNAS's temperature
    return (net, state) if with_state else net
