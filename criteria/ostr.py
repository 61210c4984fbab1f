"""Operation strength (OStr-DARTS, Yang et al., arXiv 2409.14433; docs/criteria.md §9.3) [recon].

The paper's formula could not be read; the harness default is the reconstruction
``taylor``: with the mixing weights beta = w(alpha) treated as free scalars (one per edge
and op, shared by all cells), the loss change from deleting op o on edge e is estimated to
first order as  Delta L_{e,o} ~= -beta_{e,o} * dL_val/dbeta_{e,o}, averaged (signed) over
validation batches, with the supernet's weights fixed and BatchNorm in eval mode.  Higher
= removing the op hurts more.  ``none`` is never computed, so its strength is exactly 0.

Variants (option ``variant``): ``abs`` averages |beta * dL/dbeta| (Molchanov-style
saliency); ``exact`` measures L_val(beta_{e,o} <- 0) - L_val directly (DARTS-PT's loss
criterion, one shot).

Measured on the CPU study (``results/cpu-study``, DARTS, C=8 N=2, 1000 validation images):
at epoch 6 taylor / exact give arch-level tau +0.28 / +0.55, at epoch 25 -0.41 / +0.48
(BN eval; with BN train taylor is about 0 at both).  The first-order estimate breaks down
once the supernet leans on a few ops, because removing an op is not an infinitesimal change;
report both variants until the paper's own formula is known.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import UserError
from bench.nets.evaluate import BN_MODES, bn_mode, edge_drops, evaluate
from criteria.registry import Context, register, unavailable

VARIANTS = ("taylor", "abs", "exact")


@register("ostr", defaults={"variant": "taylor", "bn_mode": "eval"},
          limits={"variant": VARIANTS, "bn_mode": BN_MODES})
def ostr(supernet, context: Context) -> np.ndarray:
    variant, mode = context.options["variant"], context.options["bn_mode"]
    if variant not in VARIANTS:
        raise UserError(f"ostr.variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    batches = context.valid_batches()
    if variant == "exact":
        scores = exact_loss_change(supernet, batches, mode)
    else:
        scores = taylor_strength(supernet, batches, mode, absolute=variant == "abs")
    scores[unavailable(supernet)] = np.nan
    context.info.update({"variant": variant, "bn_mode": mode})
    return scores


def taylor_strength(supernet, batches, mode: str = "eval", absolute: bool = False) -> np.ndarray:
    """-(beta * dL/dbeta) averaged over images (or its absolute value, per batch)."""
    beta = supernet.arch_weights().detach().clone().requires_grad_(True)
    total = torch.zeros_like(beta, dtype=torch.float64)
    images = 0
    with bn_mode(supernet, mode):
        for x, y in batches:
            loss = F.cross_entropy(supernet(x, weights=beta), y)
            (grad,) = torch.autograd.grad(loss, [beta])
            contribution = -(beta.detach() * grad).double()
            total += (contribution.abs() if absolute else contribution) * len(y)
            images += len(y)
    return (total / images).cpu().numpy()


def exact_loss_change(supernet, batches, mode: str = "eval") -> np.ndarray:
    """L_val with op o on edge e removed (weight 0, no renormalisation) minus L_val: DARTS-PT's
    mask test with ``crit=loss`` (``bench.nets.evaluate.edge_drops``), one unmasked evaluation for all edges,
    an edge's masks in one forward where the device batches them (``bench.device.masks_together``)."""
    from bench.device import masks_together

    base = evaluate(supernet, batches, mode, supernet.arch_weights().detach())
    together = masks_together(supernet.alpha.device)
    return np.stack([edge_drops(supernet, batches, edge, "loss", mode, base, together)[0]
                     for edge in range(6)])
