"""The alpha-Hessian eigenvalue (RobustDARTS): power iteration against known and explicit spectra."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench.errors import UserError
from bench.nets.evaluate import bn_mode
from bench.nets.hessian import (alpha_hessian_eigenvalue, dominant_eigenvalue, free_alpha,
                                hessian_vector_product)

EXACT = {"iterations": 2000, "tol": 1e-13}


def quadratic(eigenvalues, seed=0):
    """0.5 x^T A x with A = Q diag(eigenvalues) Q^T (float64): the loss, its parameter and A."""
    generator = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    x = torch.randn(n, generator=generator, dtype=torch.float64).requires_grad_(True)
    return (lambda: 0.5 * x @ a @ x), x, a.numpy()


def test_diagonal_quadratic_by_hand():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    result = dominant_eigenvalue(lambda: 0.5 * (1 * x[0] ** 2 + 2 * x[1] ** 2 + 3 * x[2] ** 2), [x], **EXACT)
    assert result["eigenvalue"] == pytest.approx(3.0, abs=1e-9)
    assert result["max_eigenvalue"] == result["eigenvalue"]
    assert result["converged"] and result["hvps"] == result["iterations"] >= 2


@pytest.mark.parametrize("eigenvalues", [[5.0, 3.0, 1.0, 0.5, 0.2], [4.0, -2.5, 1.0, -0.3, 0.0]],
                         ids=["positive-definite", "indefinite"])
def test_quadratic_positive_dominant_matches_numpy(eigenvalues):
    loss, x, a = quadratic(eigenvalues)
    result = dominant_eigenvalue(loss, [x], **EXACT)
    assert result["eigenvalue"] == pytest.approx(np.linalg.eigvalsh(a)[-1], abs=1e-4)
    assert result["max_eigenvalue"] == result["eigenvalue"] and result["converged"]
    assert result["residual"] < 1e-3


def test_quadratic_negative_dominant_keeps_its_sign_and_finds_the_largest():
    loss, x, a = quadratic([-6.0, 2.0, 1.0, -1.0, 0.1])
    spectrum = np.linalg.eigvalsh(a)
    result = dominant_eigenvalue(loss, [x], **EXACT)
    assert result["eigenvalue"] == pytest.approx(spectrum[0], abs=1e-4)  # -6: largest magnitude, negative
    assert result["max_eigenvalue"] == pytest.approx(spectrum[-1], abs=1e-4)  # 2, from H + 6 I
    assert result["converged"] and result["max_converged"]
    assert result["hvps"] > result["iterations"]
    skipped = dominant_eigenvalue(loss, [x], largest=False, **EXACT)
    assert skipped["max_eigenvalue"] is None and skipped["hvps"] == skipped["iterations"]


def test_parameter_list_terms_and_support():
    """Several tensors, a loss given as terms, and a support mask (the principal submatrix)."""
    loss_a, xa, a = quadratic([3.0, -1.0, 0.5, 2.0])
    loss_b, xb, b = quadratic([1.0, 1.0, -4.0, 2.5], seed=1)
    # one quadratic over the 8 entries of (p, q): p (2 x 2) holds the first 4, q the last 4
    p = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    q = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    full = np.zeros((8, 8))
    full[:4, :4], full[4:, 4:] = a, b
    full[:4, 4:] = full[4:, :4] = 0.3
    m = torch.tensor(full)

    def terms():
        z = torch.cat([p.reshape(-1), q])
        yield 0.5 * z @ m @ z
        yield (z ** 2).sum()  # + 2 I

    result = dominant_eigenvalue(terms, [p, q], **EXACT)
    spectrum = np.linalg.eigvalsh(full + 2 * np.eye(8))
    assert result["eigenvalue"] == pytest.approx(spectrum[np.abs(spectrum).argmax()], abs=1e-4)
    support = [torch.tensor([[True, False], [True, True]]), torch.tensor([False, True, True, False])]
    keep = np.array([True, False, True, True, False, True, True, False])
    sub = (full + 2 * np.eye(8))[np.ix_(keep, keep)]
    restricted = dominant_eigenvalue(terms, [p, q], support=support, **EXACT)
    expected = np.linalg.eigvalsh(sub)
    assert restricted["eigenvalue"] == pytest.approx(expected[np.abs(expected).argmax()], abs=1e-4)
    assert restricted["max_eigenvalue"] == pytest.approx(expected[-1], abs=1e-4)
    empty = dominant_eigenvalue(terms, [p, q], support=[s & False for s in support])
    assert empty["eigenvalue"] == 0.0 and empty["hvps"] == 0


def test_seed_determines_the_result_and_budget_is_kept():
    loss, x, _ = quadratic([2.0, 1.9, 1.8, -1.0, 0.5, 0.1])
    first = dominant_eigenvalue(loss, [x], iterations=5, tol=1e-12, seed=3)
    assert first == dominant_eigenvalue(loss, [x], iterations=5, tol=1e-12, seed=3)
    assert first["iterations"] == 5 and not first["converged"]  # gap 1.9 / 2: not within 5 steps
    other = dominant_eigenvalue(loss, [x], iterations=5, tol=1e-12, seed=4)
    assert other["eigenvalue"] != first["eigenvalue"]


@pytest.mark.parametrize("kwargs, message", [({"iterations": 0}, "iterations"), ({"tol": 0.0}, "tolerance"),
                                             ({"iterations": 2.5}, "iterations")])
def test_bad_settings_are_user_errors(kwargs, message):
    loss, x, _ = quadratic([1.0, 2.0])
    with pytest.raises(UserError, match=message):
        dominant_eigenvalue(loss, [x], **kwargs)


# -- the supernet -----------------------------------------------------------------------------
# C=4, N=1 in float64 on 32 CIFAR-10 validation images (two batches of 16), centre 16 x 16 crops:
# the supernet pools globally, and the crops keep each double backward cheap.

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread (two threads on a busy shared 2-core machine run ~5x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batches(cifar_root):
    from bench.data import load_search_data
    from bench.data import fixed_batches

    data = load_search_data(cifar_root, torch.device("cpu"), weight_size=64, alpha_size=64)
    return [(x[..., 8:24, 8:24].double(), y) for x, y in fixed_batches(data.alpha, 32, batch_size=16)]


def make_supernet(pruned: bool = False):
    from bench.runs.checkpoints import build_supernet
    from bench.search.config import SearchConfig

    net = build_supernet(SearchConfig(C=4, N=1), 0, torch.device("cpu")).double()
    with torch.no_grad():  # alpha away from uniform: a spectrum with a clear dominant eigenvalue
        net.alpha.copy_(torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    if pruned:
        net.prune(0, 3)
        net.prune(2, 0)
        net.fix_edge(4, 2)
    return net


def mean_loss(net, batches, alpha):
    """The mean loss over ``batches`` with ``alpha`` substituted (``functional_call``)."""
    images = sum(len(y) for _, y in batches)
    return sum(F.cross_entropy(functional_call(net, {"alpha": alpha}, (x,)), y, reduction="sum")
               for x, y in batches) / images


@pytest.fixture(scope="module")
def pruned_train(batches):
    """A pruned supernet (2 ops pruned, 1 edge fixed) and its explicit 30 x 30 Hessian in BN train
    mode, by ``torch.autograd.functional.hessian`` (on a copy: train-mode BN updates its buffers)."""
    net = make_supernet(pruned=True)
    clone = copy.deepcopy(net)
    with bn_mode(clone, "train"):
        hessian = torch.autograd.functional.hessian(lambda a: mean_loss(clone, batches, a),
                                                    net.alpha.detach().clone())
    return net, hessian.reshape(30, 30).numpy()


def alpha_terms(net, batches):
    images = sum(len(y) for _, y in batches)
    return lambda: (F.cross_entropy(net(x), y, reduction="sum") / images for x, y in batches)


def test_hvp_is_the_explicit_hessian_times_v(pruned_train, batches):
    net, hessian = pruned_train
    clone = copy.deepcopy(net)
    v = torch.randn(6, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with bn_mode(clone, "train"):
        (hv,) = hessian_vector_product(alpha_terms(clone, batches), [clone.alpha], [v])
    np.testing.assert_allclose(hv.reshape(-1).numpy(), hessian @ v.reshape(-1).numpy(), rtol=0, atol=1e-10)


def test_hvp_in_eval_mode_matches_central_differences(batches):
    """(g(alpha + eps v) - g(alpha - eps v)) / 2 eps, g the alpha gradient, |v| = 1.  eps is small
    enough that no ReLU changes side (the gradient jumps where one does: at eps 1e-3 the difference
    is off by several times |Hv|); float64 rounding then leaves about 1e-10 |g| / eps."""
    net = make_supernet()
    v = torch.randn(6, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    v /= v.norm()
    eps = 1e-6

    def gradient(alpha):
        alpha = alpha.detach().requires_grad_(True)
        return torch.autograd.grad(mean_loss(net, batches, alpha), [alpha])[0]

    with bn_mode(net, "eval"):
        (hv,) = hessian_vector_product(alpha_terms(net, batches), [net.alpha], [v])
        difference = (gradient(net.alpha + eps * v) - gradient(net.alpha - eps * v)) / (2 * eps)
    assert float(hv.norm()) > 1e-4
    assert float((hv - difference).norm()) < 1e-6 * float(hv.norm()) + 1e-12


def test_power_iteration_matches_the_explicit_hessian(pruned_train, batches):
    """Power iteration in float64 to 1e-8 against ``eigvalsh`` of the explicit Hessian: within 1e-6
    relative (the second-largest magnitude is under 0.8 of the largest, checked: it converges)."""
    net, hessian = pruned_train
    free = free_alpha(net).reshape(-1).numpy()
    assert np.all(hessian[~free] == 0) and np.all(hessian[:, ~free] == 0)  # pruned ops, fixed edges
    spectrum = np.linalg.eigvalsh(hessian[np.ix_(free, free)])
    magnitudes = np.sort(np.abs(spectrum))
    assert magnitudes[-2] < 0.8 * magnitudes[-1]
    dominant = spectrum[np.abs(spectrum).argmax()]
    result = alpha_hessian_eigenvalue(net, batches, "train", iterations=40, tol=1e-8, largest=True)
    assert result["converged"] and result["iterations"] < 40
    assert result["eigenvalue"] == pytest.approx(dominant, rel=1e-6)
    # the dominant one is negative here: the largest comes from the shifted run, from below, within 5 %
    # of the spectrum's width (its gap is small: 0.024 vs 0.028, so it need not meet 1e-8)
    assert dominant < 0 and result["max_eigenvalue"] <= spectrum[-1] + 1e-12
    assert result["max_eigenvalue"] >= spectrum[-1] - 0.05 * (spectrum[-1] - spectrum[0])
    assert result["hvps"] > result["iterations"] and result["seconds"] > 0
    assert result["free"] == int(free.sum()) == 23 and result["images"] == 32 and result["batches"] == 2
    assert 1.0 < result["loss"] < 5.0  # mean cross-entropy of 10 classes near chance


def test_weight_decay_shifts_every_free_eigenvalue(pruned_train, batches):
    """weight_decay / 2 ||alpha_free||^2 in the loss: H + weight_decay I on the free entries."""
    net, hessian = pruned_train
    free = free_alpha(net).reshape(-1).numpy()
    spectrum = np.linalg.eigvalsh(hessian[np.ix_(free, free)] + 0.02 * np.eye(int(free.sum())))
    result = alpha_hessian_eigenvalue(net, batches, "train", iterations=60, tol=1e-8, weight_decay=0.02,
                                      largest=False)
    assert result["converged"] and result["max_eigenvalue"] is None
    assert result["eigenvalue"] == pytest.approx(spectrum[np.abs(spectrum).argmax()], rel=1e-6)


def test_pruned_entries_do_not_count(batches):
    net = make_supernet(pruned=True)
    first = alpha_hessian_eigenvalue(net, batches, "eval", iterations=3)
    with torch.no_grad():
        net.alpha[0, 3] += 5.0  # pruned op
        net.alpha[4] -= 3.0     # fixed edge
    second = alpha_hessian_eigenvalue(net, batches, "eval", iterations=3)
    assert first["free"] == second["free"] == 30 - 2 - 5
    for key in ("eigenvalue", "iterations", "hvps", "loss"):
        assert first[key] == second[key]


def test_supernet_left_exactly_as_it_was_and_deterministic(batches):
    net = make_supernet()
    net.eval()
    net.alpha.grad = torch.full_like(net.alpha, 0.25)
    conv = net.cells[0].edges[0].nor_conv_3x3.conv.weight
    conv.grad = torch.ones_like(conv)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    first = alpha_hessian_eigenvalue(net, batches, "train", iterations=2, seed=7)
    second = alpha_hessian_eigenvalue(net, batches, "train", iterations=2, seed=7)
    assert not net.training
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    for name, p in net.named_parameters():
        assert p.requires_grad == flags[name]
        assert (p.grad is None and grads[name] is None) or torch.equal(p.grad, grads[name]), name
    first.pop("seconds")
    second.pop("seconds")
    assert first == second
    with bn_mode(net, "train"), torch.no_grad():  # the check can fail: train-mode forwards move BN stats
        net(batches[0][0])
    assert not torch.equal(net.state_dict()["stem.1.running_mean"], before["stem.1.running_mean"])


def test_frozen_alpha_is_measured_and_stays_frozen(batches):
    net = make_supernet()
    net.alpha.requires_grad_(False)
    result = alpha_hessian_eigenvalue(net, batches, "eval", iterations=2)
    assert np.isfinite(result["eigenvalue"]) and not net.alpha.requires_grad


@pytest.mark.parametrize("kwargs, message", [({"bn_mode": "test"}, "BN mode"),
                                             ({"iterations": -1}, "iterations"),
                                             ({"weight_decay": -1.0}, "weight decay")])
def test_bad_arguments_are_user_errors(batches, kwargs, message):
    with pytest.raises(UserError, match=message):
        alpha_hessian_eigenvalue(make_supernet(), batches, **kwargs)
    with pytest.raises(UserError, match="empty"):
        alpha_hessian_eigenvalue(make_supernet(), [])
