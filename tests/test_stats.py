import numpy as np
import pytest

from bench import space, stats


def test_tau_of_ground_truth_against_itself_and_reversed(truth):
    c10 = truth.metric("cifar10_test")
    assert stats.kendall_tau(c10, c10) == pytest.approx(1.0)
    assert stats.kendall_tau(c10, -c10) == pytest.approx(-1.0)
    assert stats.spearman(c10, c10) == pytest.approx(1.0)
    assert stats.pearson(c10, -c10) == pytest.approx(-1.0)


def test_tau_b_handles_ties_like_the_textbook():
    x = [1, 2, 2, 3]
    y = [1, 3, 2, 4]
    # concordant 5, discordant 0, one tie in x only: tau_b = 5 / sqrt(5 * 6)
    assert stats.kendall_tau(x, y) == pytest.approx(5 / np.sqrt(30))
    assert np.isnan(stats.kendall_tau([1, 1, 1], [1, 2, 3]))
    assert stats.kendall_tau([1, np.nan, 3, 2], [1, 5, 3, 2]) == pytest.approx(1.0)


def test_precision_and_overlap():
    truth = np.arange(10.0)
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.0])  # reversed
    assert stats.precision_at_k(truth, truth, 3) == 1.0
    assert stats.precision_at_k(scores, truth, 3) == 0.0
    half = np.array([0, 1, 2, 3, 4, 5, 6, 9, 8, 7.0])  # top-3 = {7, 8, 9} same set
    assert stats.precision_at_k(half, truth, 3) == 1.0
    assert stats.top_k_overlap(np.array([0, 1, 2, 3, 4, 9, 5, 6, 8, 7.0]), truth, 4) == pytest.approx(3 / 5)


def test_bootstrap_interval_contains_the_point_estimate(truth):
    rng = np.random.default_rng(1)
    c10 = truth.metric("cifar10_test")
    sample = rng.choice(15625, 400, replace=False)
    noisy = c10[sample] + rng.normal(0, 5, 400)
    point = stats.kendall_tau(noisy, c10[sample])
    low, high = stats.bootstrap_ci(stats.kendall_tau, noisy, c10[sample], n_boot=300, seed=0)
    assert low < point < high
    assert 0 < high - low < 0.3
    mean_low, mean_high = stats.bootstrap_ci(np.mean, np.arange(100.0), n_boot=500)
    assert mean_low < 49.5 < mean_high


def test_additive_scores_of_a_one_hot_matrix_rank_its_cell_first():
    cell = (3, 1, 2, 4, 0, 3)
    onehot = np.zeros((6, 5))
    onehot[np.arange(6), cell] = 1.0
    scores = stats.additive_scores(onehot)
    assert scores.argmax() == space.to_code(cell)
    assert scores.max() == 6 and (scores == 6).sum() == 1
    # matches a direct loop on a few cells
    rng = np.random.default_rng(0)
    s = rng.normal(size=(6, 5))
    full = stats.additive_scores(s)
    for code in (0, 17, 9999):
        c = space.from_code(code)
        assert full[code] == pytest.approx(sum(s[e, c[e]] for e in range(6)))
    s[2, 4] = np.nan
    assert np.isnan(stats.additive_scores(s)[space.to_code((0, 0, 4, 0, 0, 0))])


def test_arch_level_perfect_scores_and_subsets(truth):
    c10 = truth.metric("cifar10_test")
    rows = {r["subset"]: r for r in stats.arch_level(np.zeros((6, 5)), c10, "cifar10_test")}
    assert rows["all"]["n"] == 15625 and rows["unique"]["n"] == 6466
    assert 1500 < rows["top10"]["n"] < 1700
    assert np.isnan(rows["all"]["kendall_tau"])  # constant scores
    # the marginal-mean matrix is a decent additive predictor: strongly positive tau
    mean, best = stats.op_marginals(c10)
    rows = {r["subset"]: r for r in stats.arch_level(mean, c10)}
    assert rows["all"]["kendall_tau"] > 0.5
    assert stats.op_level_marginal(mean, c10)[0]["kendall_tau"] == pytest.approx(1.0)


def test_op_marginals_hand_check(truth):
    c10 = truth.metric("cifar10_test")
    mean, best = stats.op_marginals(c10)
    cells = space.all_cells()
    assert mean[3, 0] == pytest.approx(np.nanmean(c10[cells[:, 3] == 0]))
    assert best.max() == pytest.approx(np.nanmax(c10))
    # conv3x3 beats none on every edge on average
    assert (mean[:, 3] > mean[:, 0]).all()


def test_conditional_truth_and_protocol_3(truth):
    c10 = truth.metric("cifar10_test")
    optimum = space.from_code(int(np.nanargmax(c10)))
    table = stats.conditional_truth(c10, optimum)
    for e in range(6):
        assert table[e, optimum[e]] == pytest.approx(np.nanmax(c10))
    row = stats.op_level_conditional(table, c10, optimum)
    assert row["kendall_tau"] == pytest.approx(1.0)


def test_supernet_level():
    row = stats.supernet_level([1, 2, 3, 4], [10, 20, 30, 40])
    assert row["kendall_tau"] == 1.0 and row["n"] == 4


def test_rank_report_puts_each_protocol_on_its_own_rows(truth):
    """Protocols 1-3 per metric: scores that are the conditional truth around the optimum derive
    the optimum and rank its ops perfectly (protocol 3, both references); the marginal means rank
    the ops perfectly in protocol 2 and the cells well in protocol 1; ``derived`` moves protocol 3."""
    c10, c100 = truth.metric("cifar10_test"), truth.metric("cifar100_test")
    optimum = space.from_code(int(np.nanargmax(c10)))
    truths = {"cifar10_test": c10, "cifar100_test": c100}
    rows = stats.rank_report(stats.conditional_truth(c10, optimum), truths)
    assert len(rows) == 2 * 9 and [r["metric"] for r in rows] == ["cifar10_test"] * 9 + ["cifar100_test"] * 9
    by_key = {(r["protocol"], r["subset"]): r for r in rows[:9]}
    for subset in ("derived", "optimum"):
        assert by_key["3-op-conditional", subset]["kendall_tau"] == pytest.approx(1.0)
        assert by_key["3-op-conditional", subset]["reference"] == space.to_string(optimum)
    mean, _ = stats.op_marginals(c10)
    rows = {(r["protocol"], r["subset"]): r for r in stats.rank_report(mean, {"cifar10_test": c10},
                                                                      derived=(1,) * 6)}
    assert rows["2-op-marginal", "mean"]["kendall_tau"] == pytest.approx(1.0)
    assert rows["2-op-marginal", "spearman-mean"]["spearman"] == pytest.approx(1.0)
    assert rows["1-arch", "all"]["kendall_tau"] > 0.5 and rows["1-arch", "unique"]["n"] == 6466
    assert rows["3-op-conditional", "derived"]["reference"] == space.to_string((1,) * 6)


def test_mean_std():
    assert stats.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert stats.mean_std([5.0]) == (5.0, 0.0, 1)
    m, s, n = stats.mean_std([np.nan])
    assert n == 0 and np.isnan(m)


def _op_quality_truth() -> np.ndarray:
    """Accuracy = sum over edges of the op index (op 4 best everywhere), plus 100 for the all-'none'
    cell: the marginal means keep the op order (100 / 3,125 < 1), the marginal maxima put 'none' first."""
    truth = space.all_cells().sum(axis=1).astype(float)
    truth[space.to_code((0, 0, 0, 0, 0, 0))] += 100.0
    return truth


def test_per_edge_spearman_by_hand():
    truth = _op_quality_truth()
    mean, best = stats.op_marginals(truth)
    assert list(best[0]) == [100.0, 21.0, 22.0, 23.0, 24.0]
    nan = np.nan
    scores = np.array([[0, 1, 2, 3, 4],          # mean: rho 1; max: d^2 = 20, rho 0
                       [4, 3, 2, 1, 0],          # mean: -1;   max: d^2 = 20, rho 0
                       [0, 1, 2, 4, 3],          # mean: 0.9;  max: d^2 = 22, rho -0.1
                       [nan, nan, nan, nan, 7],  # one finite score: skipped
                       [1, 1, 1, 1, 1],          # constant: rho undefined, skipped
                       [nan, 0, 1, 2, 3]], float)  # 'none' pruned: 4 pairs, rho 1 for both
    rows = {r["subset"]: r for r in stats.op_level_marginal_spearman(scores, truth, "m")}
    assert rows["spearman-mean"]["spearman"] == pytest.approx((1 - 1 + 0.9 + 1) / 4)
    assert rows["spearman-max"]["spearman"] == pytest.approx((0 + 0 - 0.1 + 1) / 4)
    assert rows["spearman-mean"]["n"] == rows["spearman-max"]["n"] == 4
    assert rows["spearman-mean"]["per_edge_spearman"][:3] == pytest.approx([1.0, -1.0, 0.9])
    assert np.isnan(rows["spearman-mean"]["per_edge_spearman"][3:5]).all()
    # Kendall over the same four edges: 1, -1, (9 - 1) / 10, 1
    assert rows["spearman-mean"]["kendall_tau"] == pytest.approx((1 - 1 + 0.8 + 1) / 4)
    assert rows["spearman-mean"]["protocol"] == "2-op-marginal" and rows["spearman-mean"]["metric"] == "m"


def test_per_edge_spearman_without_any_defined_edge():
    rho, rhos, n = stats.per_edge_spearman(np.ones((6, 5)), np.arange(30.0).reshape(6, 5))
    assert n == 0 and np.isnan(rho) and len(rhos) == 6
