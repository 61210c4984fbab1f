"""Perturbation-based selection of DARTS-PT (Wang et al., ICLR 2021, Sec. 3-4; docs/criteria.md §9.2).

The mask test (Sec. 3.1) as the official ``nasbench201/projection.py`` runs it: for op o of
edge e, o's mixing weight is set to 0 in all cells (no renormalisation) and the supernet is
evaluated by ``infer(valid_queue, eval=False)``: BatchNorm in train mode, batch 64, over the
validation half, which the official ``valid_queue`` draws with a ``SubsetRandomSampler`` through
the *training* transform (random crop 32 pad 4, horizontal flip; ``train_search.py`` builds both
queues from ``train_data``), so every evaluation sees its own shuffle and augmentation.  All five
ops are masked, ``none`` included, and the op whose removal leaves the lowest accuracy wins, the
first index on ties (``compare = x < y`` on ops in order).  Score = 100 - ACC\\o (``crit=acc``) or
L\\o (``crit=loss``): per edge a constant shift of the drop ACC - ACC\\o, so argmax and every rank
statistic are the drop's.  Options: ``batch_size`` (64), ``transform`` (``official``; ``plain``:
normalised images in a fixed order, every evaluation on the same batches), ``bn_mode``,
``masks_together`` (0 = ``bench.device.masks_together``): that many masks in one forward, each
on its own draw with its own BatchNorm statistics (``Supernet._stacked_logits``), equal to
separate evaluations up to float rounding.  Validation images: the first ``valid_size`` of the
alpha half (published: all).  Every record lists how it departs from the published procedure
(``info.deviations``) and how many decisions were ties broken to the first index.

``darts-pt-proj`` is the paper's procedure (Algorithm 1, ``darts-proj-201.sh``): edges decided
one at a time in a seeded random order by the mask test on that edge, the decided edge fixed to
its op, ``proj_intv`` tuning epochs between decisions (SGD lr = w_lr / 10 constant, momentum 0.9,
wd 3e-4; alpha steps first on undecided edges, none if the supernet was trained with frozen
alpha, as ``blank-proj``).  ``tune_steps`` caps a tuning epoch for CPU budgets (0 = full epochs).

``darts-pt-oneshot`` is the harness's variant, not the paper's procedure: the same mask test on
every edge of one checkpoint, no decisions and no tuning in between; a cheap per-epoch curve.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from bench import data as data_mod
from bench.errors import UserError
from bench.nets.evaluate import BN_MODES, Evaluation, bn_mode, masked_weights
from criteria.registry import Context, register

TRANSFORMS = ("official", "plain")
MASK_TEST = {"crit": "acc", "bn_mode": "train", "batch_size": 64, "transform": "official",
             "masks_together": 0}
"""Options of the mask test and their published values (``masks_together`` changes only speed)."""
PROJECTION = {"proj_intv": 5, "tune_steps": 0, "tune_lr_divisor": 10.0, "tune_weight_decay": 3e-4}
"""Options of the projection and their published values (``darts-proj-201.sh``, ``projection.py``)."""
MASK_TEST_LIMITS = {"crit": ("acc", "loss"), "bn_mode": BN_MODES, "transform": TRANSFORMS,
                    "batch_size": (1, None), "masks_together": (0, None)}
"""What ``resolve_options`` accepts for the mask test's options (checked before any work)."""


class ValidQueue:
    """The mask test's validation queue: the first ``size`` images of the alpha half in batches of
    ``batch_size``.  ``official``: each ``draw`` is a fresh seeded shuffle and training augmentation
    (the official queue: ``SubsetRandomSampler`` over ``train_data``); ``plain``: the same
    normalised batches in order every time."""

    def __init__(self, context: Context, batch_size: int, transform: str, stream: int):
        if context.data is None:
            raise UserError("the DARTS-PT mask test needs validation data; none was given")
        alpha = context.data.alpha
        self.half = len(alpha)
        self.images = self.half if context.valid_size is None else min(int(context.valid_size), self.half)
        if self.images <= 0:
            raise UserError(f"validation subset size must be positive, got {context.valid_size}")
        self.subset = data_mod.DeviceDataset(alpha.images[:self.images], alpha.labels[:self.images])
        self.batch_size, self.transform = batch_size, transform
        self.seed, self.stream, self.draws = context.seed, stream, 0

    def draw(self):
        """One pass over the validation images (an iterable of (x, y) batches)."""
        self.draws += 1
        if self.transform == "plain":
            return data_mod.eval_batches(self.subset, self.batch_size)
        device = self.subset.labels.device
        generator = data_mod.epoch_generator(self.seed * 7 + self.stream, self.draws, device)
        return data_mod.batches(self.subset, self.batch_size, generator)


def _evaluate_draws(net, draws: list, weights: list[torch.Tensor], masks: list[np.ndarray],
                    mode: str) -> list[Evaluation]:
    """Evaluation k: mixing weights ``weights[k]`` (ops off in ``masks[k]`` skipped) on ``draws[k]``.
    Several at once go through one forward per batch, the K batches concatenated, each with its own
    weights and BatchNorm statistics (``Supernet._stacked_logits``)."""
    k = len(draws)
    if k > 1 and not (getattr(net, "stacks_weights", False) and net.implementation == "fast"):
        return [_evaluate_draws(net, [d], [w], [m], mode)[0] for d, w, m in zip(draws, weights, masks)]
    stack = weights[0] if k == 1 else torch.stack(weights)
    mask = masks[0] if k == 1 else np.logical_or.reduce([np.asarray(m, bool) for m in masks])
    correct = np.zeros(k)
    loss = np.zeros(k)
    images = 0
    with torch.no_grad(), bn_mode(net, mode):
        for parts in zip(*draws):
            n = len(parts[0][1])
            if any(len(y) != n for _, y in parts):
                raise RuntimeError("the draws of one stacked evaluation must have equal batch sizes")
            logits = net(torch.cat([x for x, _ in parts]), weights=stack, compute_mask=mask).view(k, n, -1)
            for j, (_, y) in enumerate(parts):
                correct[j] += float((logits[j].argmax(1) == y).sum())
                loss[j] += float(F.cross_entropy(logits[j].float(), y, reduction="sum"))
            images += n
    return [Evaluation(100.0 * c / images, s / images, images) for c, s in zip(correct, loss)]


def mask_test(net, queue: ValidQueue, edge: int, crit: str, mode: str, together: int) -> dict:
    """Every available op of ``edge`` masked in turn, each evaluation on its own draw; the decision
    is the op with the highest score (lowest masked accuracy, or highest masked loss), first index
    on ties, as the official ``project``."""
    weights = net.arch_weights().detach()
    ops = [op for op in range(5) if bool(net.op_mask[edge, op])]
    masked = [masked_weights(weights, edge, op) for op in ops]
    results: list[Evaluation] = []
    for start in range(0, len(ops), together):
        chunk = masked[start:start + together]
        results += _evaluate_draws(net, [queue.draw() for _ in chunk], [w for w, _ in chunk],
                                   [m for _, m in chunk], mode)
    scores = np.full(5, np.nan)
    for op, r in zip(ops, results):
        scores[op] = 100.0 - r.accuracy if crit == "acc" else r.loss
    best = np.nanmax(scores)
    tied = [op for op in ops if scores[op] == best]
    accuracy, loss = [None] * 5, [None] * 5
    for op, r in zip(ops, results):
        accuracy[op], loss[op] = float(r.accuracy), float(r.loss)
    return {"edge": edge, "op": tied[0], "scores": [None if math.isnan(s) else s for s in scores.tolist()],
            "tied_ops": tied if len(tied) > 1 else [], "masked_accuracy": accuracy, "masked_loss": loss}


def _options(supernet, context: Context) -> dict:
    """The mask test's options, checked before any evaluation; ``masks_together`` 0 resolved."""
    from bench import device as device_mod

    opts = dict(context.options)
    if opts["crit"] not in ("acc", "loss"):
        raise UserError(f"darts-pt crit must be 'acc' or 'loss', got {opts['crit']!r}")
    if opts["bn_mode"] not in BN_MODES:
        raise UserError(f"darts-pt bn_mode must be one of {', '.join(BN_MODES)}, got {opts['bn_mode']!r}")
    if opts["transform"] not in TRANSFORMS:
        raise UserError(f"darts-pt transform must be one of {', '.join(TRANSFORMS)}, "
                        f"got {opts['transform']!r}")
    if opts["batch_size"] < 1:
        raise UserError(f"darts-pt batch_size must be >= 1, got {opts['batch_size']}")
    if opts["masks_together"] < 0:
        raise UserError(f"darts-pt masks_together must be >= 0 (0 = the device's default), got "
                        f"{opts['masks_together']}")
    for key in ("proj_intv", "tune_steps"):
        if opts.get(key, 0) < 0:
            raise UserError(f"darts-pt-proj {key} must be >= 0, got {opts[key]}")
    opts["masks_together"] = opts["masks_together"] or device_mod.masks_together(supernet.alpha.device)
    return opts


def deviations(opts: dict, queue: ValidQueue) -> list[str]:
    """How this evaluation departs from the published procedure (empty: as published)."""
    out = []
    if queue.images < queue.half:
        out.append(f"validation subset: {queue.images} of the {queue.half} alpha-half images "
                   f"(published: all)")
    published = {**MASK_TEST, **PROJECTION}
    for key, value in published.items():
        if key in opts and key != "masks_together" and opts[key] != value:
            out.append(f"{key}={opts[key]} (published: {value})")
    return out


def _summary(opts: dict, queue: ValidQueue, tests: list[dict]) -> dict:
    found = deviations(opts, queue)
    return {"crit": opts["crit"], "bn_mode": opts["bn_mode"], "batch_size": opts["batch_size"],
            "transform": opts["transform"], "masks_together": opts["masks_together"],
            "valid_images": queue.images, "alpha_half_images": queue.half, "evaluations": queue.draws,
            "ties": sum(bool(t["tied_ops"]) for t in tests), "deviations": found, "as_published": not found}


@register("darts-pt-oneshot", defaults=dict(MASK_TEST), limits=MASK_TEST_LIMITS)
def darts_pt_oneshot(supernet, context: Context) -> np.ndarray:
    opts = _options(supernet, context)
    queue = ValidQueue(context, opts["batch_size"], opts["transform"], stream=1)
    tests = [mask_test(supernet, queue, edge, opts["crit"], opts["bn_mode"], opts["masks_together"])
             for edge in range(6)]
    summary = _summary(opts, queue, tests)
    summary["deviations"].insert(0, "one shot: every edge tested on the same checkpoint, no tuning "
                                    "(published: Algorithm 1, darts-pt-proj)")
    context.info.update({**summary, "as_published": False, "edges": tests})
    return np.array([t["scores"] for t in tests], dtype=float)


@register("darts-pt-proj", defaults={**MASK_TEST, **PROJECTION},
          limits={**MASK_TEST_LIMITS, "proj_intv": (0, None), "tune_steps": (0, None),
                  "tune_lr_divisor": (1e-12, None), "tune_weight_decay": (0.0, None)})
def darts_pt_projection(supernet, context: Context) -> np.ndarray:
    opts = _options(supernet, context)
    cfg = context.search_config
    if cfg is None or context.data is None:
        raise UserError("darts-pt-proj fine-tunes the supernet: it needs the run's config and data "
                        "(use `bench select`)")
    queue = ValidQueue(context, opts["batch_size"], opts["transform"], stream=2)
    w_opt = torch.optim.SGD(supernet.weight_parameters(), lr=cfg.w_lr / opts["tune_lr_divisor"], momentum=0.9,
                            weight_decay=opts["tune_weight_decay"])
    a_opt = torch.optim.Adam(supernet.arch_parameters(), lr=cfg.a_lr, betas=(cfg.a_beta1, cfg.a_beta2),
                             weight_decay=cfg.a_weight_decay, eps=cfg.a_eps)
    if context.checkpoint is not None and "a_opt" in context.checkpoint:
        a_opt.load_state_dict(context.checkpoint["a_opt"])
    rng = np.random.default_rng(context.seed)
    undecided = [e for e in range(6) if supernet.fixed[e] is None]
    tune_epochs = opts["proj_intv"] * (len(undecided) - 1)
    scores = np.full((6, 5), np.nan)
    decisions: list[dict] = []

    def decide(tune_epoch: int) -> None:
        edge = int(rng.choice(undecided))
        undecided.remove(edge)
        test = mask_test(supernet, queue, edge, opts["crit"], opts["bn_mode"], opts["masks_together"])
        scores[edge] = np.array(test["scores"], dtype=float)
        supernet.fix_edge(edge, test["op"])
        decisions.append({"tune_epoch": tune_epoch, **test})

    for ep in range(tune_epochs):
        if undecided and (ep % opts["proj_intv"] == 0 or ep == tune_epochs - 1):
            decide(ep)
        _tune_epoch(supernet, w_opt, a_opt, cfg, context, ep, opts["tune_steps"])
    while undecided:  # proj_intv = 0 or 1: the remaining decisions come after the last tuning epoch
        decide(tune_epochs)
    context.info.update({**_summary(opts, queue, decisions), "decisions": decisions,
                         "tune_epochs": tune_epochs,
                         "proj_intv": opts["proj_intv"], "tune_steps": opts["tune_steps"],
                         "alpha_trains": not cfg.freeze_alpha, "final_cell": list(supernet.fixed),
                         "alpha_after": supernet.alpha.detach().cpu().tolist()})
    return scores  # per edge the scores at its decision, so the per-edge argmax is the decided op


def _tune_epoch(supernet, w_opt, a_opt, cfg, context: Context, ep: int, tune_steps: int) -> None:
    """One tuning epoch of ``projection.py``: per weight batch an alpha step (unless alpha is frozen:
    ``blank-proj`` makes no alpha forward) then a weight step."""
    from bench.search.steps import NonFiniteLoss, alpha_step, weight_step

    device = supernet.alpha.device
    generator = data_mod.epoch_generator(context.seed + 104729, ep, device)
    alpha_queue = data_mod.endless_batches(context.data.alpha, cfg.batch_size,
                                           data_mod.epoch_generator(context.seed + 7919 + 104729, ep, device))
    supernet.train()
    for step, (x, y) in enumerate(data_mod.batches(context.data.weight, cfg.batch_size, generator)):
        if tune_steps and step >= tune_steps:
            break
        xv, yv = next(alpha_queue)
        if not cfg.freeze_alpha:
            alpha_step(supernet, a_opt, xv, yv)
        loss, _ = weight_step(supernet, w_opt, x, y, cfg.grad_clip)
        if step % 50 == 0 and not math.isfinite(float(loss)):
            raise NonFiniteLoss(f"non-finite loss while fine-tuning for darts-pt-proj at tune epoch {ep + 1}")
