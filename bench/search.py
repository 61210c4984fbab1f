"""Bilevel supernet search: DARTS first order (V1) and second order (V2) on NAS-Bench-201.

DARTS (Liu, Simonyan, Yang, ICLR 2019): weights w minimise the training loss, alpha the
validation loss.  First order (Eq. 6 with xi = 0): alpha-gradient at the current w.
Second order (Eq. 7-8): the gradient at the unrolled weights w' = w - xi * (mu * m +
grad_w L_train + lambda * w), minus xi times a finite-difference Hessian-vector product
(docs/criteria.md §8.1).  Step orders: NB201 DARTS-V1 does the weight step then the alpha
step; darts-pt the alpha step first; V2 always unrolls the alpha step first.

Deviation, documented: the unrolled and finite-difference passes of V2 run on copies of
the BatchNorm buffers, so they do not update the running statistics (the reference
updates them as a side effect of its HVP passes).
"""
from __future__ import annotations

import contextlib
import math
import random
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench import data as data_mod
from bench import device as device_mod
from bench import methods as methods_mod
from bench import space
from bench.config import SearchConfig
from bench.errors import UserError
from bench.opscores import to_jsonable
from bench.runstore import Run
from bench.supernet import Supernet

EpochHook = Callable[[dict], None]


class NonFiniteLoss(UserError):
    """A NaN/inf loss or alpha stopped the run; checkpoints written before it are intact."""


def build_supernet(cfg: SearchConfig, seed: int, device: torch.device, compile: bool = False) -> Supernet:
    """The config's supernet on ``device`` in the layout ``device.supernet_layout`` picks.
    ``compile``: let its training forwards go through ``torch.compile`` where the layout says
    it pays (the search asks for it; criteria, which run many op patterns once each, do not)."""
    torch.manual_seed(seed)
    if cfg.method == "entrannas":
        from bench.entrannas import EnTranSupernet

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


def make_optimizers(net: Supernet, cfg: SearchConfig) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum,
                            weight_decay=cfg.w_weight_decay, nesterov=cfg.w_nesterov and cfg.w_momentum > 0)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2),
                             weight_decay=cfg.a_weight_decay, eps=cfg.a_eps)
    return w_opt, a_opt


def _apply_hyperparameters(w_opt, a_opt, cfg: SearchConfig) -> None:
    """The config's optimiser settings over those stored in a checkpoint (identical on a plain resume)."""
    for group in w_opt.param_groups:
        group.update(momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    for group in a_opt.param_groups:
        group.update(
            lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2), weight_decay=cfg.a_weight_decay, eps=cfg.a_eps
        )


def cosine_lr(cfg: SearchConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine from w_lr to w_lr_min over cfg.epochs, per epoch."""
    return cfg.w_lr_min + (cfg.w_lr - cfg.w_lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2


@contextlib.contextmanager
def _frozen(params: list[torch.nn.Parameter]):
    """``params`` without gradients for the duration: a step builds no autograd graph for
    what it does not update, and a compiled step gets a backward without those gradients
    (measured in docs/speed.md)."""
    was = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, was):
            p.requires_grad_(flag)


def weight_step(
    net: Supernet, w_opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the weights; returns (loss, number correct) as device tensors."""
    w_opt.zero_grad(set_to_none=True)
    weights = net.weight_parameters()
    if net.implementation == "naive":
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()  # the reference computes (and later discards) the alpha gradient too
        net.alpha.grad = None
    else:
        with _frozen(net.arch_parameters()):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward(inputs=weights)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    w_opt.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def alpha_step(
    net: Supernet, a_opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order alpha step: grad of the validation loss w.r.t. the architecture parameters
    only (alpha, and EnTranNAS's node thresholds); no weight gradients."""
    a_opt.zero_grad(set_to_none=True)
    if net.implementation == "naive":
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()  # the reference computes every weight gradient and throws it away
        for p in net.weight_parameters():
            p.grad = None
    else:
        params = net.arch_parameters()
        with _frozen(net.weight_parameters()):
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
    a_opt.step()
    return loss.detach(), (logits.argmax(1) == y).sum()


def _loss(net: Supernet, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(functional_call(net, (params, buffers), (x,)), y)


def unrolled_alpha_gradient(
    net: Supernet, w_opt: torch.optim.SGD, lr: float, train: tuple, valid: tuple, radius_scale: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS second-order hypergradient (docs/criteria.md §8.1) at the current w, alpha.

    Returns (gradient for alpha, validation loss at w').  The momentum buffer, weight decay
    and learning rate come from the weight optimiser, as in the reference.  The
    Hessian-vector product is a central difference with radius ``radius_scale / ||v||``
    (0.01 in DARTS, Eq. 8).
    """
    names = [n for n, _ in net.named_parameters() if n != "alpha"]
    weights = dict(net.named_parameters())
    w = [weights[n] for n in names]
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    group = w_opt.param_groups[0]
    momentum, decay = group["momentum"], group["weight_decay"]
    alpha = net.alpha

    grads = torch.autograd.grad(_loss(net, weights, buffers, *train), w)
    w_prime = []
    for p, g in zip(w, grads):
        state = w_opt.state.get(p, {})
        step = g + decay * p
        if momentum > 0 and state.get("momentum_buffer") is not None:
            step = step + momentum * state["momentum_buffer"]
        w_prime.append((p - lr * step).detach().requires_grad_())
    val_loss = _loss(net, {**dict(zip(names, w_prime)), "alpha": alpha}, buffers, *valid)
    g_alpha, *v = torch.autograd.grad(val_loss, [alpha] + w_prime)
    radius = radius_scale / torch.sqrt(sum((t * t).sum() for t in v))

    def alpha_grad_at(sign: float) -> torch.Tensor:
        shifted = {n: (p + sign * radius * t).detach() for n, p, t in zip(names, w, v)}
        return torch.autograd.grad(_loss(net, {**shifted, "alpha": alpha}, buffers, *train), [alpha])[0]

    hessian_vector = (alpha_grad_at(+1.0) - alpha_grad_at(-1.0)) / (2 * radius)
    return g_alpha - lr * hessian_vector, val_loss.detach()


def second_order_alpha_step(
    net: Supernet, w_opt: torch.optim.SGD, a_opt: torch.optim.Adam, lr: float, train: tuple, valid: tuple
) -> tuple[torch.Tensor, torch.Tensor]:
    a_opt.zero_grad(set_to_none=True)
    grad, val_loss = unrolled_alpha_gradient(net, w_opt, lr, train, valid)
    net.alpha.grad = grad
    a_opt.step()
    with torch.no_grad():
        correct = (net(valid[0]).argmax(1) == valid[1]).sum()
    return val_loss, correct


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


def collapse_indicator(net: Supernet, data: data_mod.SearchData, images: int | None, seed: int) -> dict:
    """The dominant eigenvalue of the validation-loss Hessian w.r.t. alpha (RobustDARTS) on the
    first ``images`` (None: all) of the alpha half, BN in train mode; the supernet is left as it was."""
    from bench.evaluate import fixed_batches
    from bench.hessian import alpha_hessian_eigenvalue

    return alpha_hessian_eigenvalue(net, fixed_batches(data.alpha, images), "train", seed=seed)


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


INITIALISATION = 0
"""The epoch number of the supernet before any training step (recreated from the seed)."""
