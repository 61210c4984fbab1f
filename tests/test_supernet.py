"""The fast supernet against the naive reference, and the discretized networks."""
import copy

from conftest import ConvCalls
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench import device as device_mod
from bench.nets import cells
from bench.nets import supernet as supernet_mod
from bench.nets.cells import CellNetwork, avg_pool_3x3, count_parameters
from bench.nets.supernet import Supernet


LAYOUTS = pytest.mark.parametrize("layout", [(torch.contiguous_format, False),
                                             (torch.contiguous_format, True),
                                             (torch.channels_last, False), (torch.channels_last, True)],
                                   ids=["nchw", "nchw-fused", "nhwc", "nhwc-fused"])


def _pair(seed=0, C=4, N=1, layout=(torch.contiguous_format, True), **kw):
    torch.manual_seed(seed)
    net = Supernet(C=C, N=N, **kw).double().use_layout(*layout)
    with torch.no_grad():
        net.alpha.normal_(0, 1)  # far from uniform so every op's weight matters
    return net


def _grads(net, x, y, weights=None, compute_mask=None):
    net.zero_grad(set_to_none=True)
    out = net(x, weights=weights, compute_mask=compute_mask)
    F.cross_entropy(out, y).backward()
    return out.detach(), {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                          for n, p in net.named_parameters()}


def _compare(net, x, y, **kw):
    """Naive and fast passes from the same state: outputs, every gradient, every BN buffer."""
    net.train()
    fast = copy.deepcopy(net)
    net.implementation = "naive"
    out_n, g_n = _grads(net, x, y, **kw)
    out_f, g_f = _grads(fast, x, y, **kw)
    torch.testing.assert_close(out_f, out_n, rtol=1e-9, atol=1e-10)
    for name in g_n:
        torch.testing.assert_close(g_f[name], g_n[name], rtol=1e-7, atol=1e-10, msg=name)
    naive_buffers = dict(net.named_buffers())
    active = fast.active_ops(kw.get("compute_mask"))
    ops = {"nor_conv_1x1": 2, "nor_conv_3x3": 3}
    for name, buffer in fast.named_buffers():
        parts = name.split(".")
        if "edges" in parts and ops[parts[4]] not in active[int(parts[3])]:
            continue  # an op the fast pass skips: the naive one still runs (and updates) its BN
        torch.testing.assert_close(buffer, naive_buffers[name], rtol=1e-9, atol=1e-12, msg=name)
    net.implementation = "fast"


def _batch(seed=1, n=6):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 32, 32, generator=g, dtype=torch.float64)
    return images, torch.randint(0, 10, (n,), generator=g)


def test_avg_pool_equals_count_exclude_pad():
    x = torch.randn(3, 5, 8, 7, dtype=torch.float64)
    torch.testing.assert_close(avg_pool_3x3(x), F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))


@LAYOUTS
def test_fast_equals_naive_outputs_and_all_gradients(layout):
    net = _pair(layout=layout)
    _compare(net, *_batch())


@pytest.mark.skipif(not device_mod.compiler_available(torch.device("cpu")),
                    reason="no C++ compiler: the search runs eager")
@pytest.mark.filterwarnings("error:torch.compile failed")  # no silent fallback to eager
@pytest.mark.parametrize("pruned", [False, True], ids=["all-ops", "pruned-and-fixed"])
def test_compiled_training_forward_equals_naive(pruned):
    """The search's compiled forward (torch.compile, inductor) and its backward: outputs, every
    gradient and every BN buffer equal the naive reference's (float64)."""
    net = _pair(seed=5, layout=(torch.contiguous_format, True, True))
    if pruned:
        net.prune(0, 3)
        net.prune(4, 1)
        net.fix_edge(2, 4)
        net.fix_edge(5, 0)
    again = copy.deepcopy(net)
    calls = []
    real = supernet_mod.compiled_body
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(supernet_mod, "compiled_body", lambda: calls.append(1) or real())
        _compare(net, *_batch(4))
        first = _grads(net, *_batch(4))
        second = _grads(again, *_batch(4))
    assert len(calls) == 3, "the fast forward did not go through torch.compile"
    assert torch.equal(first[0], second[0]) and all(torch.equal(first[1][n], second[1][n]) for n in first[1])


def test_compiled_forward_applies_to_full_training_batches_only():
    """Search training forwards compile; evaluation, no-grad, masked forwards and a short last
    batch run eager (no graph compiled for a pattern or shape used once)."""
    net = _pair(layout=(torch.contiguous_format, True, True)).train()
    x = torch.zeros(8, 3, 32, 32, dtype=torch.float64)
    assert net.compiles(x, None) and net.compiles(x, None)
    assert not net.compiles(x[:5], None)
    assert not net.compiles(x, np.ones((6, 5), bool))
    with torch.no_grad():
        assert not net.compiles(x, None)
    assert not net.eval().compiles(x, None)
    naive = Supernet(C=4, N=1, implementation="naive")
    assert not naive.use_layout(torch.contiguous_format, True, True).compiled


def test_a_failing_compiler_falls_back_to_eager_with_a_warning():
    from torch._dynamo.exc import BackendCompilerFailed

    net = _pair(layout=(torch.contiguous_format, True, True)).train()
    x, _ = _batch(5)
    expected = copy.deepcopy(net).use_layout(torch.contiguous_format, True, False)(x)

    def failing(*args):
        raise BackendCompilerFailed(failing, RuntimeError("no C++ compiler"), None)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(supernet_mod, "compiled_body", lambda: failing)
        with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler.*runs eager"):
            out = net(x)
        torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)
        assert not net.compiled
        net.compiled = True  # any other error is the model's, not the compiler's: raised as it is
        patch.setattr(supernet_mod, "compiled_body", lambda: lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            net(x)


def test_compiled_skip_dropout_takes_p_as_a_tensor():
    """EoiNAS changes p every epoch: the compiled path takes it as data (one graph for all p)
    and keeps the distribution of ``F.dropout``: kept with probability 1 - p, scaled by 1/(1 - p)."""
    torch.manual_seed(0)
    x = torch.ones(200_000, dtype=torch.float64)
    out = cells.skip_connect_dropout(x, torch.tensor(0.25, dtype=torch.float64))
    kept = out != 0
    assert abs(kept.double().mean().item() - 0.75) < 0.005
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.75))
    assert cells.skip_connect_dropout(x, 0.0) is x


def test_channels_last_layout_is_really_used():
    net = _pair(layout=(torch.channels_last, True))
    seen = []
    net.cells[1].register_forward_hook(lambda module, inputs, output: seen.append(
        inputs[0].is_contiguous(memory_format=torch.channels_last)))
    net(_batch()[0])
    assert seen == [True] and net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)


@LAYOUTS
def test_fast_equals_naive_with_pruned_and_fixed_edges(layout):
    net = _pair(seed=3, layout=layout)
    net.prune(0, 3)
    net.prune(4, 4)
    net.prune(4, 1)
    net.fix_edge(2, 4)
    net.fix_edge(5, 0)
    _compare(net, *_batch(2))


@LAYOUTS
def test_perturbation_weights_with_compute_mask_equal_naive(layout):
    net = _pair(seed=4, layout=layout)
    weights = net.arch_weights().detach().clone()
    weights[3, 2] = 0.0  # DARTS-PT style: mask one op, no renormalisation
    mask = np.ones((6, 5), bool)
    mask[3, 2] = False
    _compare(net, *_batch(3), weights=weights, compute_mask=mask)


def _masks(net, pairs):
    """DARTS-PT's masked mixing weights (op ``op`` of ``edge`` set to 0, no renormalisation) and
    the compute masks that skip it, for (edge, op) ``pairs``."""
    base = net.arch_weights().detach()
    weights, masks = [], []
    for edge, op in pairs:
        weights.append(base.clone())
        weights[-1][edge, op] = 0.0
        masks.append(np.ones((6, 5), bool))
        masks[-1][edge, op] = False
    return weights, masks


@LAYOUTS
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_masks_evaluated_together_equal_separate_evaluations(layout, mode):
    """DARTS-PT's masks in one forward (the batch repeated, BatchNorm statistics per copy): each
    copy's logits are its own forward's, and so are the accuracies and losses."""
    from bench.nets.evaluate import bn_mode, evaluate_each

    net = _pair(seed=5, layout=layout)
    net.prune(1, 4)
    net.fix_edge(5, 3)
    x, y = _batch(4, n=8)
    weights, masks = _masks(net, [(0, 3), (0, 2), (2, 1), (1, 2)])
    mask = np.logical_or.reduce(masks[:3])
    with torch.no_grad(), bn_mode(net, mode):
        separate = [net(x, weights=w, compute_mask=m) for w, m in zip(weights[:3], masks[:3])]
        together = net(x.repeat(3, 1, 1, 1), weights=torch.stack(weights[:3]), compute_mask=mask)
    torch.testing.assert_close(together, torch.cat(separate), rtol=1e-9, atol=1e-10)

    batches = [(x[:5], y[:5]), (x[5:], y[5:])]
    one_by_one = evaluate_each(copy.deepcopy(net), batches, mode, weights, masks, together=1)
    stacked = evaluate_each(net, batches, mode, weights, masks, together=3)  # a group of 3, then of 1
    assert [e.accuracy for e in stacked] == [e.accuracy for e in one_by_one]
    assert [e.loss for e in stacked] == pytest.approx([e.loss for e in one_by_one], rel=1e-10)
    assert len({e.loss for e in stacked}) == 4  # the masks differ, and so do their losses


def test_masks_evaluated_together_update_running_stats_once_per_mask():
    """On one batch the train-mode side effect is the same as evaluating the masks one by one,
    except for the BNs of the masked convs: computed for the other copies, they also take the
    masking copy's update (as in the official code, which computes masked ops)."""
    from bench.nets.evaluate import evaluate_each

    net = _pair(seed=6, layout=(torch.contiguous_format, True))
    x, y = _batch(5, n=6)
    weights, masks = _masks(net, [(0, 3), (4, 2), (3, 1)])
    separate = copy.deepcopy(net)
    evaluate_each(separate, [(x, y)], "train", weights, masks, together=1)
    evaluate_each(net, [(x, y)], "train", weights, masks, together=3)
    expected = dict(separate.named_buffers())
    masked = [f"edges.{e}.{o}.bn" for e, o in ((0, "nor_conv_3x3"), (4, "nor_conv_1x1"))]
    for name, buffer in net.named_buffers():
        if any(m in name for m in masked):
            assert not torch.equal(buffer, expected[name]) or name.endswith("num_batches_tracked")
            continue
        torch.testing.assert_close(buffer, expected[name], rtol=1e-9, atol=1e-12, msg=name)


def test_stacked_weights_need_the_fast_supernet_and_equal_parts():
    net = _pair(seed=7)
    weights = torch.stack(_masks(net, [(0, 3), (1, 2)])[0])
    with pytest.raises(ValueError, match="equal parts"):
        net(_batch(n=5)[0], weights=weights)
    net.implementation = "naive"
    with pytest.raises(ValueError, match="fast supernet"):
        net(_batch(n=6)[0], weights=weights)


def test_pruned_ops_are_not_computed_and_renormalised():
    net = _pair()
    net.prune(1, 2)
    w = net.arch_weights()
    assert w[1, 2] == 0 and torch.allclose(w.sum(1), torch.ones(6, dtype=w.dtype))
    assert net.active_ops()[1] == (1, 3, 4)
    with pytest.raises(ValueError):
        for op in (0, 1, 3, 4):
            net.prune(1, op)


def test_reference_parameter_counts():
    assert count_parameters(CellNetwork((1,) * 6)) == 73306        # all skip: 0.073306 M
    assert count_parameters(CellNetwork((3,) * 6)) == 1531546      # all conv3x3: 1.531546 M


@pytest.mark.parametrize("index, dataset, classes", [(0, "cifar10", 10), (11, "cifar10", 10),
                                                     (284, "cifar10", 10), (11, "cifar100", 100),
                                                     (284, "ImageNet16-120", 120)])
def test_parameter_counts_match_the_official_records(nats_fixture_dir, index, dataset, classes):
    from bench.nb201 import benchmark

    official = benchmark.load_cached(nats_fixture_dir)
    cell = official.cell_of_index(index)
    params = count_parameters(CellNetwork(cell, num_classes=classes)) / 1e6
    assert params == pytest.approx(official.lookup(index)[f"{dataset}_params"], abs=5e-7)


def test_discretized_network_inherits_the_supernet_function():
    net = _pair(seed=5, C=4, N=2)
    cell = (3, 1, 2, 4, 0, 3)
    x, _ = _batch(5)
    net.train()
    with torch.no_grad():
        # give the BN running stats something to fold and the convs a bias
        for _ in range(2):
            net(x)
        for e, op in enumerate(cell):
            net.fix_edge(e, op)
        expected = net(x)
        stand_alone = net.discretize(cell).double().train()
        got = stand_alone(x)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    assert count_parameters(net.discretize(cell)) == count_parameters(CellNetwork(cell, C=4, N=2))


def test_none_is_never_computed():
    net = _pair()
    x, _ = _batch()
    for e in range(6):
        net.fix_edge(e, 0 if e != 3 else 2)  # only 3<-0 is a conv1x1
    with ConvCalls() as mode:
        net(x)
    # stem 1 + two reductions x 3 convs + one conv per search cell (3 cells)
    assert len(mode.calls) == 1 + 2 * 3 + 3


@pytest.mark.parametrize("fuse, cell_calls", [(False, 6), (True, 3)])
def test_fusion_runs_one_wide_conv_per_node(fuse, cell_calls):
    """All-conv3x3 cells: six C->C convs per cell, or one C->3C, one C->2C and one C->C."""
    net = _pair(layout=(torch.contiguous_format, fuse))
    for e in range(6):
        for op in (1, 2, 4):
            net.prune(e, op)
    with ConvCalls() as mode:
        net(_batch()[0])
    cells = [m for m in net.cells if m.__class__.__name__ == "SearchCell"]
    other = 1 + 2 * 3  # the stem, and two reduction blocks of three convs each
    assert len(mode.calls) == other + len(cells) * cell_calls
    if fuse:
        assert sorted(mode.calls)[-1] == 3 * 16 and 3 * 4 in mode.calls and 2 * 4 in mode.calls


@pytest.mark.slow
def test_paper_size_fast_equals_naive():
    """C=16, N=5 as in the paper: the fast forward and every gradient equal the naive ones."""
    torch.manual_seed(0)
    net = Supernet(C=16, N=5).double()
    with torch.no_grad():
        net.alpha.normal_(0, 1)
    net.prune(2, 4)
    net.fix_edge(4, 3)
    _compare(net, *_batch(7, n=4))


def test_layout_rule_and_overrides(monkeypatch):
    from bench import device
    from bench.errors import UserError

    monkeypatch.delenv("BENCH_MEMORY_FORMAT", raising=False)
    monkeypatch.delenv("BENCH_FUSE_CONVS", raising=False)
    monkeypatch.delenv("BENCH_COMPILE", raising=False)
    monkeypatch.setattr(device, "compiler_available", lambda dev: True)
    cpu = torch.device("cpu")
    assert device.supernet_layout(cpu, 4) == device.Layout(torch.contiguous_format, True, compile=False)
    assert device.supernet_layout(cpu, 8) == device.Layout(torch.contiguous_format, True, compile=True)
    assert device.supernet_layout(cpu, 16) == device.Layout(torch.channels_last, False, compile=True)
    monkeypatch.setattr(device, "compiler_available", lambda dev: False)  # no C++ compiler: eager
    assert device.supernet_layout(cpu, 16) == device.Layout(torch.channels_last, False, compile=False)
    monkeypatch.setenv("BENCH_MEMORY_FORMAT", "contiguous")
    monkeypatch.setenv("BENCH_FUSE_CONVS", "0")
    monkeypatch.setenv("BENCH_COMPILE", "1")
    assert device.supernet_layout(cpu, 4) == device.Layout(torch.contiguous_format, False, compile=True)
    monkeypatch.setenv("BENCH_COMPILE", "true")
    with pytest.raises(UserError, match="BENCH_COMPILE must be 0 or 1"):
        device.supernet_layout(cpu, 16)
    monkeypatch.setenv("BENCH_COMPILE", "0")
    monkeypatch.setenv("BENCH_MEMORY_FORMAT", "nhwc")
    with pytest.raises(UserError, match="BENCH_MEMORY_FORMAT must be one of channels_last, contiguous"):
        device.supernet_layout(cpu, 16)
    monkeypatch.setenv("BENCH_MEMORY_FORMAT", "contiguous")
    monkeypatch.setenv("BENCH_FUSE_CONVS", "yes")
    with pytest.raises(UserError, match="BENCH_FUSE_CONVS must be 0 or 1"):
        device.supernet_layout(cpu, 16)
