"""One epoch of the bilevel search (DARTS V1/V2, the step order of the profile, the search
method's hooks): the weight half in seeded batches, each weight step paired with an alpha batch
(``bench.search.steps``).  The run around it (checkpoints, resume, records) is
``bench.runs.experiment.run_search``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from bench import data as data_mod
from bench.search import methods as methods_mod
from bench.search.steps import NonFiniteLoss, alpha_step, cosine_lr, second_order_alpha_step, weight_step

if TYPE_CHECKING:
    from bench.nets.supernet import Supernet
    from bench.search.config import SearchConfig


def train_epoch(
    net: Supernet,
    w_opt,
    a_opt,
    cfg: SearchConfig,
    data: data_mod.SearchData,
    seed: int,
    epoch: int,
    progress: bool = True,
    method: methods_mod.Method | None = None,
) -> dict:
    """One epoch: a pass over the weight half, each step paired with an alpha batch."""
    method = method or methods_mod.Method(cfg, seed)
    alpha_trains = method.alpha_trains(epoch)
    device = net.alpha.device
    lr = cosine_lr(cfg, epoch)
    for group in w_opt.param_groups:
        group["lr"] = lr
    generator = data_mod.epoch_generator(seed, epoch, device)
    alpha_generator = data_mod.epoch_generator(seed + 7919, epoch, device)
    alpha_queue = data_mod.endless_batches(data.alpha, cfg.batch_size, alpha_generator)
    steps = math.ceil(len(data.weight) / cfg.batch_size)
    sums = torch.zeros(
        4, device=device, dtype=torch.float64
    )  # train loss*n, train correct, valid loss*n, correct
    counts = [0, 0]
    first_bad = torch.full((), -1, device=device, dtype=torch.long)
    net.train()
    from tqdm import tqdm

    bar = tqdm(
        data_mod.batches(data.weight, cfg.batch_size, generator),
        total=steps,
        disable=not progress,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        leave=False,
    )
    for step, (x, y) in enumerate(bar):
        xv, yv = next(alpha_queue)
        if not alpha_trains:
            w_loss, w_correct = weight_step(net, w_opt, x, y, cfg.grad_clip)
            method.after_weight_step(net)
            a_loss, a_correct = method.frozen_alpha_batch(net, xv, yv)  # updates no BN statistic
        elif cfg.order == "second":
            a_loss, a_correct = second_order_alpha_step(net, w_opt, a_opt, lr, (x, y), (xv, yv))
            method.after_alpha_step(net, a_correct, len(yv))
            w_loss, w_correct = weight_step(net, w_opt, x, y, cfg.grad_clip)
            method.after_weight_step(net)
        elif cfg.step_order == "alpha-first":
            a_loss, a_correct = alpha_step(net, a_opt, xv, yv)
            method.after_alpha_step(net, a_correct, len(yv))
            w_loss, w_correct = weight_step(net, w_opt, x, y, cfg.grad_clip)
            method.after_weight_step(net)
        else:
            w_loss, w_correct = weight_step(net, w_opt, x, y, cfg.grad_clip)
            method.after_weight_step(net)
            a_loss, a_correct = alpha_step(net, a_opt, xv, yv)
            method.after_alpha_step(net, a_correct, len(yv))
        sums += torch.stack(
            [w_loss.double() * len(y), w_correct.double(), a_loss.double() * len(yv), a_correct.double()]
        )
        counts[0] += len(y)
        counts[1] += len(yv)
        finite = torch.isfinite(w_loss) & torch.isfinite(a_loss) & torch.isfinite(net.alpha).all()
        first_bad = torch.where((first_bad < 0) & ~finite, torch.full_like(first_bad, step), first_bad)
        if progress and step % 25 == 0:
            bar.set_postfix(loss=f"{w_loss.item():.3f}")
    bad = int(first_bad)
    if bad >= 0:
        raise NonFiniteLoss(
            f"Non-finite loss or alpha at epoch {epoch + 1}, step {bad + 1}; the run stopped and "
            f"every checkpoint before this epoch is intact. Restart from the last good one with a "
            f"lower learning rate: the same search command plus --set w_lr={cfg.w_lr / 2:g} "
            f"--restart-from RUN (this run's folder)"
        )
    totals = sums.tolist()
    return {
        "lr": lr,
        "train_loss": totals[0] / counts[0],
        "train_acc": 100 * totals[1] / counts[0],
        "valid_loss": totals[2] / counts[1],
        "valid_acc": 100 * totals[3] / counts[1],
        "steps": steps,
    }
