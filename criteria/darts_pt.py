"""Perturbation-based selection of DARTS-PT (Wang et al., ICLR 2021, Sec. 3-4; criteria-spec §3).

``darts-pt`` (one shot, on a checkpoint): for every edge e and op o, mask o on e in all
cells (its mixing weight set to 0, *no* renormalisation, Sec. 3.1) and measure the
supernet's validation accuracy ACC\\o; score = ACC - ACC\\o, the drop, so the selected
op argmax(score) = argmin ACC\\o.  ``crit=loss`` scores L\\o - L instead.  BatchNorm runs
in train mode by default, as the official code evaluates (running statistics are updated
as a side effect); ``bn_mode=eval`` is the alternative.  Validation images: the first
``valid_size`` of the alpha half (the paper uses all 25k).  Two evaluations the official
code makes are skipped because their result is known exactly: the unmasked accuracy is
measured once, not once per edge, and masking 'none' (whose output is zero, with no
renormalisation) leaves every logit unchanged, so its drop is 0: 25 evaluations instead of 36.
``masks_together`` (0 = ``bench.device.masks_together``: 4 on CUDA, 1 on the CPU) evaluates
an edge's masks in one forward over the batch repeated, each copy with its own BatchNorm
statistics (``bench.evaluate.evaluate_each``), so the drops are those of separate evaluations
up to float rounding; only the order of the train-mode running-statistics updates changes.

``darts-pt-proj`` (the paper's procedure, §3.2 of the spec): edges decided one at a time
in a seeded random order, each decision by the same mask test restricted to that edge,
the decided edge fixed to its op in all cells, and ``proj_intv`` epochs of fine-tuning
between decisions (SGD lr = w_lr / 10 constant, momentum 0.9, wd 3e-4; alpha keeps
training on undecided edges unless the supernet was trained with frozen alpha).  Its
score matrix holds, per edge, the drops measured when that edge was decided.
Deviation: ``tune_steps`` can cap a tuning epoch for CPU budgets (0 = full epochs, the
paper's setting); the run records it.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from bench.evaluate import Evaluation, evaluate, evaluate_each
from criteria import Context, register


def _masked(weights: torch.Tensor, edge: int, op: int) -> tuple[torch.Tensor, np.ndarray]:
    """Mixing weights with op ``op`` of ``edge`` set to 0 (no renormalisation) and the compute
    mask that skips it."""
    w = weights.clone()
    w[edge, op] = 0.0
    mask = np.ones((6, 5), dtype=bool)
    mask[edge, op] = False
    return w, mask


def edge_drops(net, batches, edge: int, crit: str, bn_mode: str,
               base: Evaluation | None = None, together: int = 1) -> tuple[np.ndarray, float]:
    """Score of each available op on ``edge`` (drop when masked) and the unmasked accuracy.
    ``base``: the unmasked evaluation when the caller has it (it does not depend on the edge);
    ``together``: masked evaluations per forward (``evaluate_each``)."""
    weights = net.arch_weights().detach()
    if base is None:
        base = evaluate(net, batches, bn_mode, weights)
    drops = np.full(5, np.nan)
    if bool(net.op_mask[edge, 0]):
        drops[0] = 0.0  # 'none' outputs zeros and nothing is renormalised: masking it changes no logit
    ops = [op for op in range(1, 5) if bool(net.op_mask[edge, op])]
    masked = [_masked(weights, edge, op) for op in ops]
    for op, result in zip(ops, evaluate_each(net, batches, bn_mode, [w for w, _ in masked],
                                             [m for _, m in masked], together)):
        drops[op] = base.accuracy - result.accuracy if crit == "acc" else result.loss - base.loss
    return drops, base.accuracy


def _together(supernet, context: Context) -> int:
    """Masks per evaluation forward: the option, or the device's default (0)."""
    from bench import device as device_mod
    from bench.errors import UserError

    together = context.options["masks_together"]
    if together < 0:
        raise UserError(f"darts-pt masks_together must be >= 0 (0 = the device's default), got {together}")
    return together or device_mod.masks_together(supernet.alpha.device)


@register("darts-pt", defaults={"crit": "acc", "bn_mode": "train", "masks_together": 0})
def darts_pt(supernet, context: Context) -> np.ndarray:
    crit, mode = context.options["crit"], context.options["bn_mode"]
    if crit not in ("acc", "loss"):
        from bench.errors import UserError

        raise UserError(f"darts-pt.crit must be 'acc' or 'loss', got {crit!r}")
    batches = context.valid_batches()
    scores = np.full((6, 5), np.nan)
    # one unmasked evaluation serves every edge: its output does not depend on the running BN
    # statistics that train-mode evaluations update, so it is the same before every edge
    together = _together(supernet, context)
    base = evaluate(supernet, batches, mode, supernet.arch_weights().detach())
    for edge in range(6):
        scores[edge], _ = edge_drops(supernet, batches, edge, crit, mode, base, together)
    context.info.update({"baseline_accuracy": base.accuracy, "bn_mode": mode, "crit": crit, "masks_together": together,
                         "evaluations": 1 + int(np.isfinite(scores[:, 1:]).sum())})
    return scores


@register("darts-pt-proj", defaults={"crit": "acc", "bn_mode": "train", "masks_together": 0, "proj_intv": 5,
                                     "tune_steps": 0,
                                     "tune_lr_divisor": 10.0, "tune_weight_decay": 3e-4})
def darts_pt_projection(supernet, context: Context) -> np.ndarray:
    from bench import data as data_mod
    from bench.search import alpha_step, weight_step

    opts = context.options
    cfg = context.search_config
    if cfg is None or context.data is None:
        from bench.errors import UserError

        raise UserError("darts-pt-proj fine-tunes the supernet: it needs the run's config and data (use `bench select`)")
    device = supernet.alpha.device
    batches = context.valid_batches()
    w_opt = torch.optim.SGD(supernet.weight_parameters(), lr=cfg.w_lr / opts["tune_lr_divisor"], momentum=0.9,
                            weight_decay=opts["tune_weight_decay"])
    a_opt = torch.optim.Adam(supernet.arch_parameters(), lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2),
                             weight_decay=cfg.a_weight_decay, eps=cfg.a_eps)
    if context.checkpoint is not None and "a_opt" in context.checkpoint:
        a_opt.load_state_dict(context.checkpoint["a_opt"])
    together = _together(supernet, context)
    rng = np.random.default_rng(context.seed)
    undecided = [e for e in range(6) if supernet.fixed[e] is None]
    tune_epochs = max(opts["proj_intv"], 0) * (len(undecided) - 1)
    scores = np.full((6, 5), np.nan)
    decisions = []
    def decide(tune_epoch: int) -> None:
        edge = int(rng.choice(undecided))
        undecided.remove(edge)
        drops, base = edge_drops(supernet, batches, edge, opts["crit"], opts["bn_mode"], together=together)
        scores[edge] = drops
        op = int(np.nanargmax(drops))  # first index wins ties, as argmin acc in the official code
        supernet.fix_edge(edge, op)
        after = evaluate(supernet, batches, "eval")
        decisions.append({"tune_epoch": tune_epoch, "edge": edge, "op": op, "drops": drops.tolist(),
                          "accuracy_before": base, "accuracy_after_eval_mode": after.accuracy})

    for ep in range(tune_epochs):
        if undecided and (ep % opts["proj_intv"] == 0 or ep == tune_epochs - 1):
            decide(ep)
        generator = data_mod.epoch_generator(context.seed + 104729, ep, device)
        alpha_queue = data_mod.endless_batches(context.data.alpha, cfg.batch_size,
                                               data_mod.epoch_generator(context.seed + 7919 + 104729, ep, device))
        supernet.train()
        for step, (x, y) in enumerate(data_mod.batches(context.data.weight, cfg.batch_size, generator)):
            if opts["tune_steps"] and step >= opts["tune_steps"]:
                break
            xv, yv = next(alpha_queue)
            if not cfg.freeze_alpha:
                alpha_step(supernet, a_opt, xv, yv)
            loss, _ = weight_step(supernet, w_opt, x, y, cfg.grad_clip)
            if step % 50 == 0 and not math.isfinite(float(loss)):
                from bench.search import NonFiniteLoss

                raise NonFiniteLoss(f"non-finite loss while fine-tuning for darts-pt-proj at tune epoch {ep + 1}")
    while undecided:  # proj_intv = 0 or 1: the remaining decisions come after the last tuning epoch
        decide(tune_epochs)
    context.info.update({"decisions": decisions, "tune_epochs": tune_epochs, "tune_steps": opts["tune_steps"],
                         "masks_together": together,
                         "final_cell": list(supernet.fixed), "alpha_after": supernet.alpha.detach().cpu().tolist()})
    return scores  # per edge the drops at its decision, so the per-edge argmax is the decided op
