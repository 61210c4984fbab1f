"""Selection criteria on tiny supernets with hand-checkable cases, and the select command."""
import copy
import json

import numpy as np
import pytest
import torch

import criteria
from bench import data
from bench.data import fixed_batches
from bench.errors import UserError
from bench.nb201 import space
from bench.nets.evaluate import evaluate
from bench.runs.checkpoints import build_supernet
from bench.search import config
from bench.search.steps import make_optimizers, weight_step
from criteria import Context
from criteria.ostr import exact_loss_change, taylor_strength


@pytest.fixture(scope="module")
def slice_data(cifar_root):
    return data.load_search_data(cifar_root, torch.device("cpu"), 512, 512, split_seed=0)


def _tiny(seed=0):
    return build_supernet(config.SearchConfig(C=4, N=1), seed, torch.device("cpu"))


@pytest.fixture(scope="module")
def one_path_net(slice_data):
    """Every edge is 'none' except 3<-0, which mixes {none, conv3x3}: the conv is the only path.

    Trained (alpha frozen), then its BatchNorm running statistics recomputed for the final
    weights, so that in either BN mode it beats the conv-less network by a wide margin on the
    images it is scored on (checked here: the tests below assume it, on any CPU)."""
    net = _tiny(1)
    for e in range(6):
        if e != 3:
            net.fix_edge(e, 0)
    for op in (1, 2, 4):
        net.prune(3, op)
    cfg = config.SearchConfig(C=4, N=1)
    w_opt, _ = make_optimizers(net, cfg)
    for g in w_opt.param_groups:
        g["lr"] = 0.05
    net.train()
    batches = fixed_batches(slice_data.weight, 512, 128)
    for _ in range(12):
        for x, y in batches:
            weight_step(net, w_opt, x, y, 5.0)
    recalibrate_batch_norm(net, batches)
    with_conv = {mode: evaluate(copy.deepcopy(net), batches, mode) for mode in ("train", "eval")}
    without = copy.deepcopy(net)
    without.fix_edge(3, 0)
    without_conv = {mode: evaluate(copy.deepcopy(without), batches, mode) for mode in ("train", "eval")}
    for mode in ("train", "eval"):
        assert with_conv[mode].accuracy > 25.0, (mode, with_conv[mode])  # chance is 10 %
        assert without_conv[mode].loss - with_conv[mode].loss > 0.2, (mode, with_conv, without_conv)
    return net


def recalibrate_batch_norm(net, batches):
    """Running statistics = the exact mean/variance of the given batches under the current weights
    (cumulative average, ``momentum=None``), so eval mode matches the trained weights."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    with torch.no_grad():
        for x, y in batches:
            net(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _context(slice_data, size=512, seed=0, **options):
    # score on the training images so the network is clearly better than chance there
    half, indices = slice_data.weight, slice_data.weight_indices
    return Context(data=data.SearchData(half, half, None, indices, indices), seed=seed, options=options,
                   valid_size=size)


ONESHOT = "darts-pt-oneshot"


@pytest.mark.parametrize("name, options", [(ONESHOT, {}), (ONESHOT, {"crit": "loss"}),
                                           (ONESHOT, {"bn_mode": "eval"}), (ONESHOT, {"transform": "plain"}),
                                           ("ostr", {}),
                                           ("ostr", {"variant": "exact"}), ("ostr", {"variant": "abs"})])
def test_the_only_conv_on_the_path_scores_highest(one_path_net, slice_data, name, options):
    # a copy each: train-mode evaluations update BN running statistics, as in the official code
    scores = criteria.compute(name, copy.deepcopy(one_path_net), _context(slice_data, **options))
    assert scores[3, 3] == np.nanmax(scores)
    assert space.select_cell(scores)[3] == 3
    assert np.isnan(scores[3, [1, 2, 4]]).all()  # pruned
    if name == "ostr":
        assert scores[3, 3] > 0
        assert scores[3, 0] == 0.0  # 'none' is never computed: deleting it changes nothing
    else:  # masking 'none' is evaluated (its own draw); masking the conv leaves a constant output
        assert scores[3, 3] > scores[3, 0]


def test_oneshot_breaks_ties_to_the_first_op_and_counts_them(one_path_net, slice_data):
    """On plain batches every mask of an edge fixed to 'none' evaluates the same network: a five-way
    tie on each of the 5 fixed edges, broken to op 0 as the official strict ``<`` does."""
    ctx = _context(slice_data, transform="plain")
    scores = criteria.compute(ONESHOT, copy.deepcopy(one_path_net), ctx)
    assert ctx.info["ties"] == 5
    for edge, test in enumerate(ctx.info["edges"]):
        if edge == 3:
            assert test["tied_ops"] == [] and test["op"] == 3
        else:
            assert test["tied_ops"] == [0, 1, 2, 3, 4] and test["op"] == 0
            assert len(set(scores[edge])) == 1 and space.select_cell(scores)[edge] == 0
    assert ctx.info["evaluations"] == 5 * 5 + 2  # edge 3 has two ops left


@pytest.mark.parametrize("crit", ["acc", "loss"])
def test_oneshot_masks_together_score_as_one_by_one(one_path_net, slice_data, crit):
    """Several masks in one forward, each on its own draw with its own BatchNorm statistics, give
    the scores of separate evaluations (up to float rounding: one image may flip)."""
    net = copy.deepcopy(one_path_net)
    for e in (0, 1):
        net.fixed[e] = None  # two undecided edges with five ops each
    one, five = (criteria.compute(ONESHOT, copy.deepcopy(net),
                                  _context(slice_data, 256, masks_together=k, crit=crit)) for k in (1, 5))
    assert np.isfinite(one[0]).all() and np.isfinite(one[1]).all()
    np.testing.assert_allclose(five, one, rtol=1e-4, atol=1e-5 if crit == "loss" else 100 / 256 + 1e-9)


def test_masking_an_op_of_zero_weight_changes_nothing(slice_data):
    net = _tiny(2)
    with torch.no_grad():
        net.alpha[2, 4] = -1e4  # softmax weight exactly 0
    assert float(net.arch_weights().detach()[2, 4]) == 0.0
    for name, options in ((ONESHOT, {"transform": "plain"}),
                          (ONESHOT, {"transform": "plain", "crit": "loss"}),
                          ("ostr", {"variant": "exact"}), ("ostr", {})):
        scores = criteria.compute(name, net, _context(slice_data, 64, **options))
        if name == "ostr":
            assert scores[2, 4] == 0.0, name
        else:  # the same network as with 'none' masked, on the same batches
            assert scores[2, 4] == scores[2, 0], options


def test_ostr_taylor_approaches_exact_as_the_weight_vanishes(slice_data):
    net = _tiny(3).double()
    batches = [(x.double(), y) for x, y in fixed_batches(slice_data.alpha, 64, 64)]
    errors = []
    for logit in (0.0, -3.0, -6.0):
        with torch.no_grad():
            net.alpha.zero_()
            net.alpha[4, 3] = logit
        beta = float(net.arch_weights().detach()[4, 3])
        taylor = taylor_strength(net, batches, "eval")[4, 3]
        exact = exact_loss_change(net, batches, "eval")[4, 3]
        errors.append(abs(taylor - exact) / abs(exact))
        assert np.sign(taylor) == np.sign(exact) or beta > 0.1
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.01


def test_eoinas_with_lambda_zero_selects_like_magnitude(slice_data):
    net = _tiny(4)
    with torch.no_grad():
        net.alpha.normal_(0, 1)
    magnitude = criteria.compute("magnitude", net)
    eoi = criteria.compute("eoinas", net, _context(slice_data, lam=0.0))
    assert space.select_cell(eoi) == space.select_cell(magnitude)
    np.testing.assert_allclose(np.log(eoi), magnitude, atol=1e-6)  # float32 softmax vs float64


def test_eoinas_accuracy_term_counts_samples(slice_data):
    net = _tiny(5)
    ctx = _context(slice_data, samples=16)
    scores = criteria.compute("eoinas", net, ctx)
    drawn, forced = np.array(ctx.info["sample_counts"]), np.array(ctx.info["forced_counts"])
    assert (drawn.sum(axis=1) == 16).all()
    assert ((drawn + forced) >= 1).all()  # every available op measured at least once
    assert (forced[drawn > 0] == 0).all()
    probs = torch.softmax(net.alpha.detach().double(), -1).numpy()
    assert ((scores - probs) >= 0).all() and ((scores - probs) <= 0.5 + 1e-12).all()


def test_eoinas_measures_ops_no_draw_picked(slice_data):
    """softmax(alpha) ~ 1 on conv3x3 everywhere: the draws all give one cell, and every other op gets
    one forced draw of its own (its edge set to it, the rest drawn), whose accuracy enters A."""
    from bench.nets.evaluate import evaluate

    net = _tiny(7)
    with torch.no_grad():
        net.alpha.fill_(-30.0)
        net.alpha[:, 3] = 30.0
    ctx = _context(slice_data, 128, samples=4)
    scores = criteria.compute("eoinas", copy.deepcopy(net), ctx)
    drawn, forced = np.array(ctx.info["sample_counts"]), np.array(ctx.info["forced_counts"])
    assert (drawn[:, 3] == 4).all() and drawn.sum() == 4 * 6
    assert (forced[:, 3] == 0).all() and (forced[:, [0, 1, 2, 4]] == 1).all()
    batches = ctx.valid_batches()
    term = np.array(ctx.info["accuracy_term"])
    for k, (e, o) in enumerate((e, o) for e in range(6) for o in (0, 1, 2, 4)):
        cell = [3] * 6
        cell[e] = o
        net.fixed = cell
        expected = evaluate(copy.deepcopy(net), [batches[(4 + k) % len(batches)]], "train").accuracy / 100
        assert term[e, o] == expected
        prob = float(torch.softmax(net.alpha.detach()[e].double(), 0)[o])
        assert scores[e, o] == pytest.approx(prob + 0.5 * expected)
    net.fixed = [None] * 6
    ctx = _context(slice_data, 128, samples=4, min_samples=0)  # the old rule: never drawn -> A = 0
    criteria.compute("eoinas", copy.deepcopy(net), ctx)
    assert (np.array(ctx.info["accuracy_term"])[:, [0, 1, 2, 4]] == 0).all()


@pytest.mark.parametrize("name, options", [(ONESHOT, {"crit": "loss"}), ("eoinas", {"samples": 8}),
                                           ("random", {})])
def test_random_draws_follow_the_context_seed(slice_data, name, options):
    """The draws (DARTS-PT's shuffles and augmentations, EoiNAS's cell samples, random scores) come
    from the context's seed: the same seed replays them, another seed draws others."""
    def run(seed):
        ctx = _context(slice_data, 64, seed, **options)
        scores = criteria.compute(name, _tiny(6), ctx)
        return scores, ctx.info.get("sample_counts")

    (a, counts_a), (b, counts_b), (c, counts_c) = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert counts_a == counts_b
    if name == "eoinas":  # the accuracy term may tie at init; the drawn cells differ
        assert counts_a != counts_c
    else:
        assert not np.array_equal(a, c)


def test_unknown_criterion_and_options():
    with pytest.raises(UserError, match="Unknown criterion"):
        criteria.entry("nope")
    with pytest.raises(UserError, match="has no option 'colour'"):
        criteria.resolve_options(ONESHOT, {"colour": "red"})
    with pytest.raises(UserError, match="must be of type int"):
        criteria.resolve_options("eoinas", {"samples": "many"})
    assert criteria.resolve_options("eoinas", {"samples": "8"})["samples"] == 8


def test_select_command_on_a_smoke_run(cifar_root, capsys, isolated_results, truth):
    from bench import score
    from bench.cli import main

    assert main(["search", "--profile", "smoke", "--quiet", "--data-dir", str(cifar_root),
                 "--set", "epochs=2", "--experiment", "sel"]) == 0
    run_dir = next((isolated_results / "sel").iterdir())
    args = ["select", str(run_dir), "--criteria", f"magnitude,{ONESHOT},ostr,eoinas,random",
            "--valid-size", "64",
            "--option", "eoinas.samples=8", "--supernet-tau", "12", "--quiet"]
    assert main(args) == 0
    records = [json.loads(line) for line in (run_dir / "selections.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 6
    one = next(r for r in records if r["criterion"] == ONESHOT and r["epoch"] == 2)
    # per edge all five ops masked, each evaluation one batch of 64 (its own draw)
    assert one["cost"]["forward_passes"] == 6 * 5
    info = one["info"]
    assert info["evaluations"] == 30 and info["bn_mode"] == "train" and info["batch_size"] == 64
    assert (info["valid_images"], info["alpha_half_images"], info["as_published"]) == (64, 512, False)
    assert "validation subset: 64 of the 512 alpha-half images (published: all)" in info["deviations"]
    scored = score.score_selection(one, truth)
    assert {r["protocol"] for r in scored["rank"]} == {"1-arch", "2-op-marginal", "3-op-conditional"}
    assert set(scored["accuracies"]) >= {"cifar10_test", "cifar100_test", "ImageNet16-120_test"}
    supernet = next(r for r in records if r["criterion"] == "_supernet")
    assert len(supernet["measured"]) == 12
    capsys.readouterr()
    assert main(args) == 0  # everything is there already
    assert "0 new selection record(s)" in capsys.readouterr().out
    assert main(["select", str(run_dir), "--criteria", "magnitude", "--epochs", "7"]) == 2
    assert main(["select", str(run_dir), "--criteria", "bogus"]) == 2


@pytest.mark.parametrize("freeze", [False, True])
def test_darts_pt_projection_decides_every_edge_once(cifar_root, freeze):
    from bench.runs import experiment, select
    from bench.runs.checkpoints import load_supernet

    cfg = config.resolve("smoke").replace(epochs=1, freeze_alpha=freeze)
    run = experiment.search("smoke", cfg, 0, "proj", data_dir=cifar_root, progress=False)
    before = load_supernet(run, device=torch.device("cpu")).alpha.detach().clone()
    options = {"darts-pt-proj": {"proj_intv": "1", "tune_steps": "2"}}
    records = select.apply(run, ["darts-pt-proj"], [1], options, valid_size=64, progress=False)
    info = records[0]["info"]
    assert sorted(d["edge"] for d in info["decisions"]) == list(range(6))
    assert [d["tune_epoch"] for d in info["decisions"]] == [0, 1, 2, 3, 4, 5]
    assert space.parse(records[0]["cell"]) == tuple(info["final_cell"])
    for d in info["decisions"]:  # all five ops masked; the first of the highest scores wins
        scores = np.array(d["scores"], dtype=float)
        assert np.isfinite(scores).all() and d["op"] == int(np.argmax(scores))
        assert d["op"] == int(np.argmin(d["masked_accuracy"]))  # the official argmin of the masked accuracy
    assert info["evaluations"] == 30 and records[0]["cost"]["forward_passes"] > 6 * 5
    assert "proj_intv=1 (published: 5)" in info["deviations"] and info["alpha_trains"] == (not freeze)
    after = torch.tensor(info["alpha_after"])
    if freeze:  # DARTS-PT (fix alpha): only the weights are tuned
        assert torch.equal(after, before)
    else:  # alpha keeps training on undecided edges during tuning
        assert not torch.equal(after, before)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_masking_none_changes_no_logit_on_fixed_batches(slice_data, mode):
    """Why ``edge_drops`` (ostr exact) does not evaluate 'none': on fixed batches, 'none' masked
    (weight 0, no renormalisation) equals the unmasked network.  The DARTS-PT mask test evaluates
    it anyway: there every evaluation has its own shuffle and augmentation, as the official queue."""
    from bench.nets.evaluate import evaluate

    net = _tiny(2)
    with torch.no_grad():
        net.alpha.normal_(0, 1)
    batches = fixed_batches(slice_data.alpha, 128, 64)
    weights = net.arch_weights().detach()
    base = evaluate(net, batches, mode, weights)
    for edge in range(6):
        masked_weights = weights.clone()
        masked_weights[edge, 0] = 0.0
        compute_mask = np.ones((6, 5), bool)
        compute_mask[edge, 0] = False
        masked = evaluate(net, batches, mode, masked_weights, compute_mask)
        assert (masked.accuracy, masked.loss) == (base.accuracy, base.loss)
