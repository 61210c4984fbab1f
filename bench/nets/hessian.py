"""Dominant eigenvalue of the Hessian of the validation loss w.r.t. alpha (a collapse indicator).

RobustDARTS (Zela et al., ICLR 2020, Sec. 4 and Fig. 3) shows that the dominant eigenvalue of
nabla^2_alpha L_valid grows during a DARTS search before the derived cells degenerate to
parameter-free ops, and stops the search early on it (DARTS-ES).  Their code
(``src/search/train_search.py`` with ``analyze.py``) builds the full Hessian once per epoch,
at the end of it, on one search minibatch with BatchNorm in train mode, the mean cross-entropy,
w.r.t. all architecture parameters, with the alpha weight decay added on its diagonal, and takes
``max(eigvals(H))``.

Here the eigenvalue comes from power iteration with exact Hessian-vector products (Pearlmutter,
Neural Computation 1994: the gradient of g . v, g = grad L built with ``create_graph``; two
backward passes per forward), so only vectors the size of alpha are stored.  Differences from
the reference, on purpose: the loss is the mean over a fixed, unaugmented validation subset
(the same images every epoch, so epochs compare; one batch's graph alive at a time); alpha
weight decay is off unless asked for (``weight_decay``, the reference's diagonal shift).

Sign convention: power iteration converges to the eigenvalue of largest magnitude, returned with
its sign as ``eigenvalue``.  ``max_eigenvalue`` is the largest one (the reference's
``max(eigvals)``): the same number when ``eigenvalue`` >= 0; when the dominant one is negative
(alpha at a saddle or a maximum of the loss), a second power iteration on H - eigenvalue * I,
whose spectrum is then >= 0 with top max_eigenvalue - eigenvalue, estimates it from below; it
converges slowly when the largest eigenvalue is small against |eigenvalue| (``max_converged``
says whether it met the tolerance).
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F

from bench.data import SearchData, fixed_batches
from bench.errors import UserError
from bench.nets.evaluate import BN_MODES, bn_mode as bn_mode_context

Vector = list[torch.Tensor]
LossFn = Callable[[], torch.Tensor | Iterable[torch.Tensor]]

_TINY = 1e-30


def _dot(a: Vector, b: Vector) -> float:
    return float(sum((x.double() * y.double()).sum() for x, y in zip(a, b)))


def _norm(a: Vector) -> float:
    return _dot(a, a) ** 0.5


def _check(iterations: int, tol: float) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise UserError(f"Hessian power iterations must be a positive integer, got {iterations!r}")
    if not tol > 0:
        raise UserError(f"Hessian power-iteration tolerance must be positive, got {tol!r}")


def hessian_vector_product(loss_fn: LossFn, params: Sequence[torch.Tensor], vector: Vector) -> Vector:
    """H v for the Hessian of the loss w.r.t. ``params`` (double backward).

    ``loss_fn()`` returns the loss, or an iterable of terms whose sum is the loss; each term's
    graph is built, differentiated twice and released before the next (one batch in memory)."""
    out = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        terms = loss_fn()
        for term in [terms] if isinstance(terms, torch.Tensor) else terms:
            if not term.requires_grad:
                continue
            grads = torch.autograd.grad(term, params, create_graph=True, allow_unused=True)
            inner = [(g * v).sum() for g, v in zip(grads, vector) if g is not None and g.requires_grad]
            if not inner:  # the term is at most linear in params
                continue
            for o, h in zip(out, torch.autograd.grad(torch.stack(inner).sum(), params, allow_unused=True)):
                if h is not None:
                    o.add_(h)
    return out


def _power_iteration(apply: Callable[[Vector], Vector], start: Vector, iterations: int,
                     tol: float) -> tuple[float, int, bool, float]:
    """(Rayleigh quotient, products used, converged, relative residual ||Av - lv|| / |l|).

    Stops when two successive Rayleigh quotients differ by at most ``tol`` relative to the last."""
    v = [x / _norm(start) for x in start]
    previous = None
    estimate, residual = 0.0, 0.0
    for k in range(1, iterations + 1):
        w = apply(v)
        estimate = _dot(v, w)
        residual = _norm([a - estimate * b for a, b in zip(w, v)]) / max(abs(estimate), _TINY)
        if previous is not None and abs(estimate - previous) <= tol * max(abs(estimate), _TINY):
            return estimate, k, True, residual
        size = _norm(w)
        if size == 0.0:  # v in the null space: the operator is zero on the support
            return 0.0, k, True, 0.0
        v = [x / size for x in w]
        previous = estimate
    return estimate, iterations, False, residual


def dominant_eigenvalue(loss_fn: LossFn, params: Sequence[torch.Tensor], iterations: int = 20,
                        tol: float = 1e-3, seed: int = 0, support: Sequence[torch.Tensor] | None = None,
                        largest: bool = True) -> dict:
    """Largest-magnitude eigenvalue of the Hessian of ``loss_fn()`` w.r.t. ``params`` by power iteration.

    ``support`` (bool masks shaped like ``params``) restricts the Hessian to those entries (its
    principal submatrix).  The start vector is standard normal from ``seed``, so the result is
    deterministic where the loss is.  Returns ``eigenvalue`` (signed, see the module text),
    ``iterations`` (its Hessian-vector products), ``converged`` (two successive Rayleigh
    quotients within ``tol``, relative), ``residual`` (||Hv - eigenvalue v|| / |eigenvalue|),
    ``max_eigenvalue`` and ``max_converged`` (``eigenvalue`` when it is >= 0; else, with
    ``largest``, a second run on the shifted Hessian, a lower bound that converges slowly when the
    largest eigenvalue is small against |eigenvalue|; else None) and ``hvps`` (all products)."""
    _check(iterations, tol)
    params = list(params)
    masks = [torch.ones_like(p, dtype=torch.bool) for p in params] if support is None else list(support)
    weights = [m.to(device=p.device, dtype=p.dtype) for m, p in zip(masks, params)]
    if sum(int(m.sum()) for m in masks) == 0:
        return {"eigenvalue": 0.0, "iterations": 0, "converged": True, "residual": 0.0,
                "max_eigenvalue": 0.0, "max_converged": True, "hvps": 0}
    generator = torch.Generator().manual_seed(int(seed))
    start = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) * m
             for p, m in zip(params, weights)]

    def apply(v: Vector, shift: float = 0.0) -> Vector:
        hv = hessian_vector_product(loss_fn, params, v)
        return [(h - shift * x) * m for h, x, m in zip(hv, v, weights)]

    value, steps, converged, residual = _power_iteration(apply, start, iterations, tol)
    out = {"eigenvalue": value, "iterations": steps, "converged": converged, "residual": residual,
           "max_eigenvalue": value if value >= 0 else None,
           "max_converged": converged if value >= 0 else None, "hvps": steps}
    if value < 0 and largest:
        top, more, top_converged, _ = _power_iteration(lambda v: apply(v, value), start, iterations, tol)
        out.update(max_eigenvalue=top + value, max_converged=top_converged, hvps=steps + more)
    return out


def free_alpha(supernet) -> torch.Tensor:
    """Bool (6 x 5): the alpha entries the mixing weights depend on (unpruned ops of free edges)."""
    free = supernet.op_mask.clone()
    for edge, op in enumerate(supernet.fixed):
        if op is not None:
            free[edge] = False
    return free


@contextlib.contextmanager
def _measuring(supernet, mode: str) -> Iterator[None]:
    """The supernet ready for alpha-Hessian products, and afterwards exactly as it was.

    Inside: BN in ``mode``, only alpha requires grad, eager fp32 forward (no double backward
    through ``torch.compile``), no random forward parts (skip dropout, Gumbel noise).  On exit:
    buffers (BN running statistics) copied back, flags and attributes restored; ``.grad`` is
    never touched (``torch.autograd.grad`` only)."""
    weights = supernet.weight_parameters()
    flags = [p.requires_grad for p in weights]
    alpha_flag = supernet.alpha.requires_grad
    buffers = [(b, b.detach().clone()) for b in supernet.buffers()]
    relaxation = supernet.relaxation
    saved = {name: getattr(supernet, name) for name in ("compiled", "precision", "skip_dropout")}
    noise = getattr(relaxation, "generator", None)
    try:
        for p in weights:
            p.requires_grad_(False)
        supernet.alpha.requires_grad_(True)
        supernet.compiled, supernet.precision, supernet.skip_dropout = False, "fp32", 0.0
        if noise is not None:
            relaxation.generator = None
        with bn_mode_context(supernet, mode):
            yield
    finally:
        if noise is not None:
            relaxation.generator = noise
        for key, value in saved.items():
            setattr(supernet, key, value)
        supernet.alpha.requires_grad_(alpha_flag)
        for p, flag in zip(weights, flags):
            p.requires_grad_(flag)
        with torch.no_grad():
            for buffer, copy in buffers:
                buffer.copy_(copy)


def alpha_hessian_eigenvalue(supernet, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                             bn_mode: str = "train", iterations: int = 20, tol: float = 1e-3, seed: int = 0,
                             weight_decay: float = 0.0, largest: bool = True) -> dict:
    """Dominant eigenvalue of nabla^2_alpha of the mean cross-entropy over ``batches`` (RobustDARTS).

    The loss is the sum over all images divided by their number (with BN ``train`` each batch is
    normalised by its own statistics, as in a search step).  Only the free alpha entries count
    (``free_alpha``: pruned ops and fixed edges have no Hessian).  ``weight_decay`` adds
    weight_decay / 2 * ||alpha_free||^2 to the loss, i.e. weight_decay to every eigenvalue (the
    reference uses the alpha weight decay).  The supernet is left exactly as it was.

    Returns ``dominant_eigenvalue``'s dict plus ``loss`` (mean loss at alpha), ``seconds``,
    ``images``, ``batches``, ``bn_mode``, ``free`` (free alpha entries), ``tol``,
    ``iteration_limit``, ``seed`` and ``weight_decay``.  Each Hessian-vector product costs one
    forward and two backward passes over ``images``."""
    if bn_mode not in BN_MODES:
        raise UserError(f"Hessian BN mode must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
    _check(iterations, tol)
    if not weight_decay >= 0:
        raise UserError(f"Hessian weight decay must be >= 0, got {weight_decay!r}")
    batches = list(batches)
    images = sum(len(y) for _, y in batches)
    if images == 0:
        raise UserError("the Hessian needs at least one validation image; got an empty subset")
    began = time.perf_counter()
    free = free_alpha(supernet)
    measured = {"loss": float("nan")}

    def loss_terms() -> Iterator[torch.Tensor]:
        total = 0.0
        for x, y in batches:
            term = F.cross_entropy(supernet(x), y, reduction="sum") / images
            total += float(term.detach())
            yield term
        if weight_decay > 0:
            yield 0.5 * weight_decay * (supernet.alpha * free).pow(2).sum()
        measured["loss"] = total

    with _measuring(supernet, bn_mode):
        result = dominant_eigenvalue(loss_terms, [supernet.alpha], iterations, tol, seed, [free], largest)
    result.update({"loss": measured["loss"], "seconds": round(time.perf_counter() - began, 3),
                   "images": images, "batches": len(batches), "bn_mode": bn_mode, "free": int(free.sum()),
                   "tol": tol, "iteration_limit": iterations, "seed": seed, "weight_decay": weight_decay})
    return result


def collapse_indicator(supernet, data: SearchData, images: int | None, seed: int) -> dict:
    """The dominant eigenvalue of the validation-loss Hessian w.r.t. alpha (RobustDARTS) on the
    first ``images`` (None: all) of the alpha half, BN in train mode; the supernet is left as it was."""
    return alpha_hessian_eigenvalue(supernet, fixed_batches(data.alpha, images), "train", seed=seed)
