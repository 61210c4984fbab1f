"""Search methods that change training: fix-alpha, NAP, EoiNAS (smoke-size real runs)."""
import dataclasses
import os

from conftest import ConvCalls
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench import data
from bench.errors import UserError
from bench.nb201 import space
from bench.nets.supernet import Supernet
from bench.runs.checkpoints import build_supernet
from bench.runs.experiment import run_search
from bench.runs.runstore import Run
from bench.search import config


@pytest.fixture(scope="module")
def tiny_data(cifar_root):
    return data.load_search_data(cifar_root, torch.device("cpu"), 256, 256, split_seed=0)


def _run(cfg, tmp_path, name, tiny_data, hooks=None):
    run = Run(tmp_path / name)
    run.start({"config": cfg.to_dict(), "seed": 0, "profile": "test"})
    net = run_search(cfg, 0, run, tiny_data, torch.device("cpu"), hooks=hooks, progress=False)
    return run, net


def _smoke(method, **changes):
    return config.resolve("smoke", method=method).replace(weight_size=256, alpha_size=256, **changes)


def test_method_defaults_follow_the_spec():
    eoi = config.resolve("paper", method="eoinas")
    assert (eoi.epochs, eoi.warmup_epochs, eoi.prune_every, eoi.relaxation) == (100, 20, 20, "gumbel")
    cpu = config.resolve("cpu", method="eoinas")
    assert (cpu.epochs, cpu.warmup_epochs, cpu.prune_every) == (25, 5, 5)
    nap = config.resolve("paper", method="nap")
    assert nap.relaxation == "sigmoid" and nap.exclude_none and nap.prune_every == 12
    assert config.resolve("paper", method="darts-fix-alpha").freeze_alpha


def test_none_gets_no_gradient_without_normalisation():
    torch.manual_seed(0)
    net = Supernet(C=4, N=1, relaxation="sigmoid").double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    F.cross_entropy(net(x), torch.tensor([0, 1, 2, 3])).backward()
    assert torch.equal(net.alpha.grad[:, 0], torch.zeros(6, dtype=torch.float64))
    assert (net.alpha.grad[:, 1:].abs() > 0).all()
    soft = Supernet(C=4, N=1, relaxation="softmax").double()
    F.cross_entropy(soft(x), torch.tensor([0, 1, 2, 3])).backward()
    assert (soft.alpha.grad[:, 0].abs() > 0).all()  # with softmax, none competes through the denominator


def test_fix_alpha_keeps_alpha_at_its_initialisation(tmp_path, tiny_data):
    cfg = _smoke("darts-fix-alpha", epochs=2)
    run, net = _run(cfg, tmp_path, "fix", tiny_data)
    torch.testing.assert_close(net.alpha, build_supernet(cfg, 0, torch.device("cpu")).alpha, rtol=0, atol=0)
    assert run.epochs()[-1]["method"]["name"] == "darts-fix-alpha"


def test_nap_prunes_weakest_ops_on_schedule_and_skips_their_compute(tmp_path, tiny_data):
    cfg = _smoke("nap", epochs=4, prune_every=1)
    run, net = _run(cfg, tmp_path, "nap", tiny_data)
    records = run.epochs()
    assert [len(r["method"]["pruned"]) for r in records] == [6, 6, 6, 0]
    mask = np.array(records[-1]["op_mask"])
    assert (mask.sum(axis=1) == 1).all() and not mask[:, 0].any()
    for r in records[:3]:
        gates = np.array(r["method"]["gates"], dtype=float)
        for e, o in r["method"]["pruned"]:
            assert gates[e, o] == np.nanmin(gates[e])
    cell = space.parse(records[-1]["method"]["cell"])
    assert cell == tuple(int(np.flatnonzero(row)[0]) for row in mask)
    # pruned ops are not computed: count the convs of one forward (one call per edge conv, unfused)
    net.use_layout(net.memory_format, fuse_convs=False)
    with ConvCalls() as mode:
        net(torch.randn(2, 3, 32, 32))
    expected = 1 + 2 * 3 + 3 * sum(op in (2, 3) for op in cell)  # stem, reductions, cell convs
    assert len(mode.calls) == expected


def test_nap_none_threshold_discards_weak_edges():
    from bench.search.methods.nap import NAP

    cfg = config.resolve("smoke", method="nap").replace(none_threshold=0.6)
    net = build_supernet(cfg, 0, torch.device("cpu"))
    nap = NAP(cfg)
    nap.setup(net)
    with torch.no_grad():
        net.alpha.fill_(0.0)  # every gate 0.5 < 0.6
        net.alpha[2, 3] = 2.0  # gate 0.88
    cell = space.select_cell(nap.scores(net))
    assert cell == (0, 0, 3, 0, 0, 0)


def test_eoinas_prunes_one_op_per_edge_per_stage_and_resets_adam(tmp_path, tiny_data):
    from bench.search.methods.eoinas import EoiNAS

    cfg = _smoke("eoinas", eoi_variant="code")
    assert (cfg.epochs, cfg.warmup_epochs, cfg.prune_every) == (5, 1, 1)
    run, net = _run(cfg, tmp_path, "eoi", tiny_data)
    records = run.epochs()
    assert [len(r["method"]["pruned"]) for r in records] == [0, 6, 6, 6, 6]
    assert [r["method"]["alpha_trains"] for r in records] == [False, True, True, True, True]
    assert records[0]["method"]["temperature"] == 5.0
    assert records[2]["method"]["temperature"] == pytest.approx(5.0 * 0.965)
    mask = np.array(records[-1]["op_mask"])
    assert (mask.sum(axis=1) == 1).all() and not mask[:, 0].any()  # drop_none_last
    # the code counts only steps that train alpha: none in the warm-up, 4 per epoch after it
    # (N reset at pruning)
    assert np.array(records[0]["method"]["samples"]).sum() == 0
    assert [np.array(r["method"]["samples"]).sum(axis=1).tolist() for r in records[1:]] == [[4.0] * 6] * 4
    for before, r in zip(records, records[1:]):
        ind = np.array(r["method"]["indicator"], dtype=float)
        available = np.array(before["op_mask"])
        # np.argmin order: an available NaN first, pruned ops never
        strength = np.where(available, np.nan_to_num(ind, nan=-np.inf, posinf=np.inf), np.inf)
        for e, o in r["method"]["pruned"]:
            assert o == int(np.argmin(strength[e])) or (o == 0 and r is records[-1])
    initial = build_supernet(cfg, 0, torch.device("cpu")).alpha
    # the warm-up froze alpha
    torch.testing.assert_close(torch.tensor(records[0]["alpha"]), initial, rtol=0, atol=0)
    assert not torch.equal(torch.tensor(records[1]["alpha"]), initial)
    # a checkpoint is evaluated at the temperature it was trained with, from its record or the schedule
    method = EoiNAS(cfg)
    for r in records:
        method.restore(net, r["epoch"], r)
        assert net.relaxation.temperature == r["method"]["temperature"]
        method.restore(net, r["epoch"], None)
        assert net.relaxation.temperature == pytest.approx(r["method"]["temperature"], rel=1e-12)
    method.restore(net, 0, None)
    assert net.relaxation.temperature == cfg.gumbel_temperature_start
    # resume after a kill at epoch 3 gives the same final state (indicator accumulators restored)

    class Kill(Exception):
        pass

    def kill(record):
        if record["epoch"] == 3:
            raise Kill()

    with pytest.raises(Kill):
        _run(cfg, tmp_path, "eoi2", tiny_data, hooks=[kill])
    _, resumed = _run(cfg, tmp_path, "eoi2", tiny_data)
    torch.testing.assert_close(resumed.alpha, net.alpha, rtol=0, atol=0)
    assert torch.equal(resumed.op_mask, net.op_mask)


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_eoinas_pruning_point_resets_what_each_variant_resets(variant):
    """The code resets N and keeps A at a pruning point (``train_search.py`` lines 254-255); an op with
    A = N = 0 is NaN there, pruned first by ``np.argmin``, and A > 0 with N = 0 is +inf, never pruned.
    The paper reading resets both and scores N = 0 as A / N = 0."""
    from bench.search.methods.eoinas import EoiNAS

    cfg = _smoke("eoinas", eoi_variant=variant)
    net = build_supernet(cfg, 0, torch.device("cpu"))
    method = EoiNAS(cfg)
    method.acc[:] = 50.0
    method.count[:] = 10.0
    method.acc[:, 4], method.count[:, 4] = 0.0, 0.0  # never sampled
    method.count[:, 2] = 0.0  # sampled by alpha steps, never by weight steps (code) / A without N
    acc_before = method.acc.copy()
    record, reset_adam = method.end_epoch(net, cfg.warmup_epochs + cfg.prune_every - 1)
    assert reset_adam and (method.count == 0).all()
    if variant == "code":
        assert [o for _, o in record["pruned"]] == [4] * 6
        assert np.isinf(np.array(record["indicator"], dtype=float)[:, 2]).all()
        np.testing.assert_array_equal(method.acc, acc_before)
    else:
        assert all(o in (2, 4) for _, o in record["pruned"])  # both score softmax(alpha) alone
        assert (method.acc == 0).all()


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_eoinas_own_cell_after_a_pruning_is_the_one_the_pruning_decided_on(variant):
    """Right after a pruning N is reset: A / N is +inf wherever A > 0 (``code``) or 0 (``paper``), so
    the indicator of that moment ranks nothing.  The cell of that epoch is the argmax, over the
    surviving ops, of the indicator the pruning used; the next epoch's is the live indicator again."""
    from bench.search.methods.eoinas import EoiNAS

    cfg = _smoke("eoinas", eoi_variant=variant, prune_every=2, epochs=9)  # prunes after epochs 3, 5, 7, 9
    net = build_supernet(cfg, 0, torch.device("cpu"))
    with torch.no_grad():
        net.alpha.zero_()
    method = EoiNAS(cfg)
    method.acc[:] = 50.0
    method.count[:] = 10.0
    method.count[:, 3] = 5.0          # conv 3x3: twice the others' accuracy term on every edge
    method.count[:, 4] = 20.0         # avg pool: the weakest, pruned
    record, _ = method.end_epoch(net, cfg.warmup_epochs + cfg.prune_every - 1)
    assert [o for _, o in record["pruned"]] == [4] * 6
    scores = method.scores(net)
    assert space.select_cell(scores) == (3,) * 6
    assert np.isnan(scores[:, 4]).all()
    live = method.indicator(net)  # what the cell would have been read from: no op ranked above 'none'
    assert space.select_cell(np.nan_to_num(live, nan=-np.inf)) != (3,) * 6
    method.count[:] = 1.0
    record, _ = method.end_epoch(net, cfg.warmup_epochs + cfg.prune_every)  # the live indicator again
    assert record["pruned"] == []
    np.testing.assert_array_equal(method.scores(net)[:, :4], method.indicator(net)[:, :4])


def test_eoinas_scores_rank_by_softmax_before_any_count():
    """In the warm-up nothing is counted: the method's cell (``code``) is softmax(alpha)'s, not an error."""
    from bench.search.methods.eoinas import EoiNAS

    cfg = _smoke("eoinas", eoi_variant="code")
    net = build_supernet(cfg, 0, torch.device("cpu"))
    with torch.no_grad():
        net.alpha.normal_(0, 1)
    scores = EoiNAS(cfg).scores(net)
    assert space.select_cell(scores) == tuple(int(i) for i in net.alpha.argmax(1))


def test_eoinas_code_variant_clips_the_alpha_gradient(tiny_data):
    """``clip_grad_norm_(arch_parameters(), grad_clip)`` before the alpha update, as the code; the
    paper reading does not clip.  Same net, same Gumbel draw: the clipped gradient is the raw one scaled."""
    from bench.search.methods.eoinas import EoiNAS
    from bench.search.steps import alpha_step, make_optimizers

    x, y = next(data.batches(tiny_data.alpha, 64, torch.Generator().manual_seed(0)))
    grads = {}
    for variant in ("code", "paper"):
        cfg = _smoke("eoinas", eoi_variant=variant, grad_clip=1e-6)
        net = build_supernet(cfg, 0, torch.device("cpu"))
        EoiNAS(cfg).start_epoch(net, cfg.warmup_epochs)
        _, a_opt = make_optimizers(net, cfg)
        alpha_step(net, a_opt, x, y)
        grads[variant] = net.alpha.grad.detach().clone()
    raw = grads["paper"].norm()
    assert raw > 1e-4
    torch.testing.assert_close(grads["code"], grads["paper"] * 1e-6 / (raw + 1e-6), rtol=1e-5, atol=0)


def test_frozen_alpha_batch_touches_no_training_state(tiny_data):
    """The measurement on the alpha batch of a frozen-alpha step: BatchNorm in eval mode, no Gumbel draw."""
    from bench.nets.evaluate import evaluate
    from bench.search.methods.eoinas import EoiNAS

    cfg = _smoke("eoinas")
    net = build_supernet(cfg, 0, torch.device("cpu"))
    method = EoiNAS(cfg)
    method.start_epoch(net, 0)
    net.train()
    x, y = next(data.batches(tiny_data.alpha, 64, torch.Generator().manual_seed(0)))
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    generator_state = net.relaxation.generator.get_state()
    loss, correct = method.frozen_alpha_batch(net, x, y)
    assert net.training and net.relaxation.generator is not None
    assert torch.equal(net.relaxation.generator.get_state(), generator_state)
    assert all(torch.equal(v, buffers[k]) for k, v in net.named_buffers())
    net.relaxation.generator = None
    expected = evaluate(net, [(x, y)], "eval")
    assert float(correct) == expected.accuracy * 64 / 100
    assert float(loss) == pytest.approx(expected.loss, rel=1e-6)


def test_fix_alpha_epoch_leaves_batch_norm_statistics_to_the_weight_steps(tiny_data):
    """DARTS-PT's blank step makes no forward on the alpha batch: after a fix-alpha epoch the weights and
    BatchNorm running statistics are those of the weight steps alone."""
    from bench.search import methods
    from bench.search.loop import train_epoch
    from bench.search.steps import cosine_lr, make_optimizers, weight_step

    cfg = _smoke("darts-fix-alpha")
    net = build_supernet(cfg, 0, torch.device("cpu"))
    w_opt, a_opt = make_optimizers(net, cfg)
    train_epoch(net, w_opt, a_opt, cfg, tiny_data, 0, 0, progress=False, method=methods.get(cfg, 0))
    replay = build_supernet(cfg, 0, torch.device("cpu"))
    w_opt, _ = make_optimizers(replay, cfg)
    for group in w_opt.param_groups:
        group["lr"] = cosine_lr(cfg, 0)
    replay.train()
    generator = data.epoch_generator(0, 0, torch.device("cpu"))  # train_epoch's weight batches
    for x, y in data.batches(tiny_data.weight, cfg.batch_size, generator):
        weight_step(replay, w_opt, x, y, cfg.grad_clip)
    for (name, a), b in zip(net.state_dict().items(), replay.state_dict().values()):
        assert torch.equal(a, b), name


def test_dst_hand_computed():
    from bench.nets.entrannas import dst_weights

    p = torch.full((6, 5), 0.2)
    p[0] = torch.tensor([0.1, 0.4, 0.2, 0.2, 0.1])  # node 1 has one edge
    q = dst_weights(p, torch.zeros(3))  # thresholds 0.5
    torch.testing.assert_close(q[0], torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))
    # node 2 (edges 1, 2): all candidate ratios are 1 -> q = 0.5 each, normalised over 8 entries
    torch.testing.assert_close(q[1:3, 1:], torch.full((2, 4), 1 / 8))
    assert (q[:, 0] == 0).all()
    high = dst_weights(p, torch.tensor([0.0, 5.0, 5.0]))  # thresholds ~0.993: only the maxima survive
    assert (high[1:3, 1:] > 0).all()  # ties at the max all survive


def test_feature_sharing_and_transit_cells_skip_work():
    from bench.nets.entrannas import EnTranSupernet

    torch.manual_seed(0)
    net = EnTranSupernet(C=4, N=2, engine_cells="first")
    with torch.no_grad():
        net.alpha.fill_(-5.0)
        net.alpha[:, 3] = 5.0  # conv3x3 dominates every edge; DST keeps only it
    assert net.derived_cell() == ((3,) * 6, 0)
    with ConvCalls() as mode:
        net(torch.randn(2, 3, 32, 32))
    # stem + 2 reductions x 3 convs; 6 cells: conv3x3 computed once per source node (3), shared by its edges
    assert len(mode.calls) == 1 + 6 + 6 * 3
    with torch.no_grad():
        net.alpha[:, 3] = -5.0
        net.alpha[:, 1] = 5.0  # skip everywhere: transit and engine cells compute no conv
    with ConvCalls() as mode:
        net(torch.randn(2, 3, 32, 32))
    assert len(mode.calls) == 1 + 6


def test_entrannas_smoke_run_records_dst_and_trains_thresholds(tmp_path, tiny_data, cifar_root):
    cfg = _smoke("entrannas", epochs=2)
    run, net = _run(cfg, tmp_path, "entran", tiny_data)
    last = run.epochs()[-1]["method"]
    assert set(last) >= {"engine_weights", "thresholds", "multi_op_edges", "multi_op_step_fraction",
                         "derived"}
    assert 0.0 <= last["multi_op_step_fraction"] <= 1.0
    assert not torch.equal(net.node_beta.detach(), torch.zeros(3))  # the thresholds are learned
    assert last["derived"] == last["cell"]  # the method's cell is the DST genotype
    from bench.runs import select

    records = select.apply(run, ["magnitude", "darts-pt-oneshot"], [2], valid_size=32, data_dir=cifar_root,
                           progress=False)
    assert records[0]["criterion"] == "magnitude"


def test_entrannas_always_has_a_transit_cell():
    """At N=1 every cell is the first of its stage: the default engine set shrinks to cell 0, and an
    explicit ``stage-first`` there (no transit cell, i.e. DARTS with DST) is refused."""
    from bench.nets.entrannas import EnTranSupernet

    for profile, n, engines in (("smoke", 1, "first"), ("reference", 1, "first"), ("cpu", 2, "stage-first"),
                                ("paper", 5, "stage-first")):
        cfg = config.resolve(profile, method="entrannas")
        assert (cfg.N, cfg.engine_cells) == (n, engines)
        net = EnTranSupernet(C=2, N=cfg.N, engine_cells=cfg.engine_cells)
        cells = [k for k, b in enumerate(net.cells) if type(b).__name__ == "SharedCell"]
        assert len(cells) == 3 * n and 0 < len(net.engines) < len(cells)
    assert config.resolve("reference", method="darts").engine_cells == "stage-first"  # other ids unchanged
    with pytest.raises(UserError, match="engine_cells=stage-first with N=1.*set engine_cells=first"):
        config.resolve("smoke", ["engine_cells=stage-first"], "entrannas")
    assert config.resolve("cpu", ["N=1"], "entrannas").engine_cells == "first"  # the run's N decides
    assert config.resolve("smoke", ["N=2"], "entrannas").engine_cells == "stage-first"


def test_method_defaults_follow_the_runs_recipe_and_its_own_fields_win():
    """A method's defaults are scaled to the training recipe as overridden (NAP's four prunings in
    the run's epochs), and an override of the method's own field wins over its default."""
    assert config.resolve("smoke", ["epochs=20"], "nap").prune_every == 5
    assert config.resolve("smoke", ["epochs=20", "prune_every=7"], "nap").prune_every == 7
    eoi = config.resolve("smoke", ["epochs=20"], "eoinas")
    assert (eoi.epochs, eoi.warmup_epochs, eoi.prune_every) == (20, 4, 4)


def test_entrannas_discretize_inherits_the_shared_convs():
    from bench.nets.cells import CellNetwork, count_parameters
    from bench.nets.entrannas import EnTranSupernet

    torch.manual_seed(1)
    net = EnTranSupernet(C=4, N=1).double().train()
    cell = (3, 2, 1, 4, 0, 3)
    for e, op in enumerate(cell):
        net.fix_edge(e, op)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = net(x)
        stand_alone = net.discretize(cell).double().train()
        torch.testing.assert_close(stand_alone(x), expected, rtol=1e-9, atol=1e-10)
    assert count_parameters(stand_alone) == count_parameters(CellNetwork(cell, C=4, N=1))


def test_method_timing_follows_each_schedule_in_its_own_process():
    """``perf --methods`` times the states the real schedules pass through (no speed asserted)."""
    from bench import perf

    stages, predicted = perf.time_methods("smoke", "cpu", steps=1, methods=("darts-fix-alpha", "nap"))
    by_method = {}
    for s in stages:
        by_method.setdefault(s.method, []).append(s)
    fix = by_method["darts-fix-alpha"]
    assert [(s.epochs, s.ops_per_edge, s.alpha_trains) for s in fix] == [([1, 2, 3], "5/5/5/5/5/5", False)]
    nap = by_method["nap"]  # smoke: 3 epochs, 'none' excluded, the weakest op pruned after every epoch
    assert [(s.epochs, s.ops_per_edge) for s in nap] == [([1], "4/4/4/4/4/4"), ([2], "3/3/3/3/3/3"),
                                                          ([3], "2/2/2/2/2/2")]
    for name, out in predicted.items():
        assert out["seconds"] > 0 and out["peak_mb"] >= out["growth_mb"] > 0


def test_epoch_timing_runs_each_implementation_on_a_whole_epoch(monkeypatch):
    """``perf --epoch``: the real ``train_epoch`` per implementation (no speed asserted)."""
    from bench import perf

    monkeypatch.setenv("BENCH_COMPILE", "0")  # compiled rows need a compile: covered in test_supernet
    timed = perf.time_epoch("smoke", "cpu", steps=2)
    assert list(timed) == ["naive", "eager"]
    assert all(t["steps"] == 2 and t["seconds"] > 0 for t in timed.values())
    table = perf.format_epochs("smoke", timed)
    assert table.splitlines()[2].split()[:3] == ["naive", "smoke", "2"] and "1.00" in table.splitlines()[2]


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_is_per_run_not_per_process():
    """A reset forgets an earlier, larger peak of the same process (a reused sweep worker)."""
    from bench import device as device_mod

    cpu = torch.device("cpu")
    big = np.ones(400 * 2**20 // 8)  # 400 MiB touched
    big[::512] = 2.0
    high = device_mod.peak_memory_mb(cpu)
    del big
    device_mod.peak_memory_reset(cpu)
    low = device_mod.peak_memory_mb(cpu)
    assert high - low > 300


@pytest.mark.parametrize("step", ["weight", "alpha"])
def test_conv_roofline_replays_the_reference_steps_convolutions(step):
    """``perf``'s roofline replays the naive step's convolutions (the same FLOPs as counted on
    the step), the alpha step's without weight gradients (no speed asserted)."""
    from bench import perf

    device = torch.device("cpu")
    torch.manual_seed(0)
    calls, flops = perf.reference_step("smoke", step, device)
    replayed = sum(count * perf._count_flops(perf._replay(key, device, torch.contiguous_format))
                   for key, count in calls.items())
    forwards = [key for key in calls if key[0] is torch.ops.aten.convolution.default]
    backwards = [key for key in calls if key[0] is torch.ops.aten.convolution_backward.default]
    assert len(forwards) + len(backwards) == len(calls) and forwards and backwards
    assert all(key[1][-1][1] == (step == "weight") for key in backwards)  # weight gradients: weight step only
    classifier = 2 * 64 * 16 * 10 * (3 if step == "weight" else 2)  # the head's matmuls
    assert flops == replayed + classifier
    roofline = perf.conv_roofline(calls, device, repeats=2)
    assert 0 < roofline < float("inf")


def test_a_new_methods_options_leave_other_run_ids_alone():
    """A method added later brings its options dataclass into SearchConfig; runs of other methods
    (its knobs at their defaults) keep their ids, and the knob enters the identity once it is set."""
    @dataclasses.dataclass(frozen=True)
    class NewOptions:
        new_knob: float = 1.0

        @staticmethod
        def check(cfg) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class Extended(config.SearchConfig, NewOptions):
        pass

    for method in ("darts", "nap", "eoinas"):
        cfg = config.resolve("smoke", [], method)
        extended = Extended(**cfg.to_dict())
        assert extended.digest() == cfg.digest()
        assert extended.replace(new_knob=2.0).digest() != cfg.digest()


def test_renamed_fields_load_from_old_records_and_keep_run_ids(capsys):
    cfg = config.resolve("smoke", ["gumbel_temperature_start=3", "engine_temperature=2"], "eoinas")
    stored = cfg.to_dict()
    new_to_old = {new: old for old, new in config.RENAMED.items()}
    old = {new_to_old.get(k, k): v for k, v in stored.items()}  # as config.json was written before
    assert "tau_start" in old and "gumbel_temperature_start" not in old
    assert config.SearchConfig.from_dict(old) == cfg
    assert "tau_start" in cfg.identity() and cfg.identity()["tau_start"] == 3.0  # hashed under the old name
    assert config.resolve("smoke", ["tau_start=3", "entran_tau=2"], "eoinas") == cfg
    err = capsys.readouterr().err
    assert "tau_start is deprecated" in err and "gumbel_temperature_start" in err and "entran_tau" in err
    assert config.resolve("smoke", ["tau_start=4"], "eoinas").digest() != cfg.digest()


def test_each_method_owns_its_options():
    from bench.search.methods import METHOD_OPTIONS, METHODS

    names = [{f.name for f in dataclasses.fields(options)} for options in METHOD_OPTIONS]
    assert {"lam", "gumbel_temperature_start", "warmup_epochs"} <= names[list(METHOD_OPTIONS).index(
        METHODS["eoinas"].options)]
    assert "engine_temperature" in {f.name for f in dataclasses.fields(METHODS["entrannas"].options)}
    shared = {f.name for f in dataclasses.fields(config.TrainingConfig)}
    assert all(not (shared & n) for n in names)  # a field belongs to the training recipe or to a method
    with pytest.raises(UserError, match="engine_temperature"):
        config.resolve("smoke", ["engine_temperature=0"], "entrannas")
