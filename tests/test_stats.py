import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import stats
from bench.nb201 import space


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


# -- the fast rank statistics give the numbers of the plain per-call scipy formulas ----------------
def _ref_pairs(x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _ref_corr(x, y, kind):
    a, b = _ref_pairs(x, y)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    if kind == "tau":
        return float(scipy_stats.kendalltau(a, b, variant="b").statistic)
    return float(scipy_stats.spearmanr(a, b).statistic)


def _ref_precision(x, y, k):
    a, b = _ref_pairs(x, y)
    k = min(k, len(a))
    if k <= 0:
        return float("nan")
    top = [np.argsort(-v, kind="stable")[:k] for v in (a, b)]
    return len(np.intersect1d(*top)) / k


def _ref_marginals(truth):
    cells = space.all_cells()
    out = np.full((2, 6, 5), np.nan)
    for e in range(6):
        for o in range(5):
            v = truth[cells[:, e] == o]
            v = v[np.isfinite(v)]
            if v.size:
                out[:, e, o] = v.mean(), v.max()
    return out


def _ref_conditional(truth, reference):
    table = np.empty((6, 5))
    for e in range(6):
        for o in range(5):
            variant = list(reference)
            variant[e] = o
            table[e, o] = truth[space.to_code(variant)]
    return table


def _ref_mean(values):
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _ref_edge_rows(s, target, protocol, subset, metric):
    taus = [_ref_corr(s[e], target[e], "tau") for e in range(6)]
    rhos = [_ref_corr(s[e], target[e], "rho") for e in range(6)]
    if subset.startswith("spearman"):
        same = [t for t, r in zip(taus, rhos) if np.isfinite(t) and np.isfinite(r)]
        return {"protocol": protocol, "subset": subset, "metric": metric, "n": int(np.isfinite(rhos).sum()),
                "kendall_tau": _ref_mean(same), "spearman": _ref_mean(rhos), "per_edge_spearman": rhos}
    return {"protocol": protocol, "subset": subset, "metric": metric, "n": 6, "kendall_tau": _ref_mean(taus),
            "spearman": _ref_mean(rhos), "per_edge_tau": taus}


def reference_arch_rows(s, truth, metric):
    """Protocol 1 with one scipy call per vector, the masks recomputed: the plain formulas."""
    cell_scores = s[np.arange(6)[None, :], space.all_cells()].sum(axis=1)
    unique = np.zeros(15625, bool)
    unique[np.unique(space.iso_class_ids(), return_index=True)[1]] = True
    finite = np.isfinite(truth)
    top = finite & (truth >= np.quantile(truth[finite], 0.9))
    rows = []
    for subset, mask in (("all", np.ones(15625, bool)), ("unique", unique), ("top10", top)):
        x, y = cell_scores[mask], truth[mask]
        n = len(_ref_pairs(x, y)[0])
        rows.append({"protocol": "1-arch", "subset": subset, "metric": metric, "n": n,
                     "kendall_tau": _ref_corr(x, y, "tau"), "spearman": _ref_corr(x, y, "rho"),
                     "precision_at_1pct": _ref_precision(x, y, max(1, n // 100))})
    return rows


def reference_rank_report(s, truths, derived):
    """Protocols 1-3 with one scipy call per vector, every table fact recomputed: the plain formulas
    (also the 'before' of scripts/bench_scoring.py)."""
    rows = []
    for metric, truth in truths.items():
        rows += reference_arch_rows(s, truth, metric)
        mean, best = _ref_marginals(truth)
        for subset, target in zip(("mean", "max", "spearman-mean", "spearman-max"), (mean, best) * 2):
            rows.append(_ref_edge_rows(s, target, "2-op-marginal", subset, metric))
        optimum = space.from_code(int(np.nanargmax(truth)))
        for label, reference in (("derived", derived), ("optimum", optimum)):
            row = _ref_edge_rows(s, _ref_conditional(truth, reference), "3-op-conditional", label, metric)
            rows.append({**row, "reference": space.to_string(reference)})
    return rows


def _assert_same_rows(fast, reference):
    assert len(fast) == len(reference)
    for got, want in zip(fast, reference):
        assert list(got) == list(want), (got, want)
        for key, value in want.items():
            if key in ("kendall_tau", "spearman", "per_edge_tau", "per_edge_spearman"):
                np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12, err_msg=f"{want} {key}")
            else:  # names, counts and precision (a count over k) match exactly
                assert got[key] == value or (value != value and got[key] != got[key]), (key, got, want)


def random_scores(rng, i):
    """Op-score matrices of every kind a criterion gives: continuous, tied, with unavailable (NaN) ops,
    constant rows, rows with one available op, all constant."""
    s = rng.normal(size=(6, 5))
    kind = i % 6
    if kind == 1:
        s = rng.integers(0, 3, size=(6, 5)).astype(float)
    elif kind == 2:
        s[rng.random((6, 5)) < 0.3] = np.nan
        s[np.arange(6), rng.integers(0, 5, 6)] = rng.normal(size=6)  # every edge keeps an op
    elif kind == 3:
        s[rng.integers(0, 6, 2)] = 0.5
        s[rng.integers(0, 6), :4] = np.nan
    elif kind == 4:
        s = np.log(np.exp(s) / np.exp(s).sum(axis=1, keepdims=True))
    elif kind == 5 and i % 12 == 5:
        s = np.zeros((6, 5))
    return s


def test_rank_report_matches_the_plain_formulas_on_the_real_table(truth):
    rng = np.random.default_rng(7)
    truths = {"cifar10_test": truth.metric("cifar10_test")}
    for i in range(52):
        s = random_scores(rng, i)
        derived = space.select_cell(s) if i % 3 else tuple(rng.integers(0, 5, 6))
        _assert_same_rows(stats.rank_report(s, truths, derived), reference_rank_report(s, truths, derived))


def test_rank_report_matches_the_plain_formulas_with_tied_and_missing_truth(truth):
    """A table with many ties (whole percents) and cells without a value (NaN)."""
    rng = np.random.default_rng(8)
    tied = np.round(truth.metric("cifar100_test"))
    tied[rng.choice(15625, 3000, replace=False)] = np.nan
    truths = {"tied": tied}
    for i in range(16):
        s = random_scores(rng, i)
        derived = space.select_cell(s)
        _assert_same_rows(stats.rank_report(s, truths, derived), reference_rank_report(s, truths, derived))


def test_edge_correlations_match_scipy_per_row():
    rng = np.random.default_rng(9)
    s = rng.integers(0, 3, size=(40, 5)).astype(float)
    t = rng.normal(size=(40, 5))
    t[::4, 1:3] = 2.0
    s[rng.random((40, 5)) < 0.2] = np.nan
    tau, rho = stats.edge_correlations(s, t)
    np.testing.assert_allclose(tau, [_ref_corr(a, b, "tau") for a, b in zip(s, t)], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rho, [_ref_corr(a, b, "rho") for a, b in zip(s, t)], rtol=0, atol=1e-12)
    assert np.isfinite(tau).sum() > 20  # most rows are defined, some are not


def test_truth_facts_follow_the_array_content(truth):
    c10 = truth.metric("cifar10_test").copy()
    assert stats.truth_facts(c10) is stats.truth_facts(c10.copy())
    mean, _ = stats.op_marginals(c10)
    mean[:] = 0.0  # the caller's copy: the memo is untouched
    assert stats.op_marginals(c10)[0][3, 0] == pytest.approx(np.nanmean(c10[space.all_cells()[:, 3] == 0]))
    c10[space.all_cells()[:, 0] == 3] += 50.0  # changed in place: new facts
    assert stats.op_marginals(c10)[0][0, 3] > 100.0
    with pytest.raises(ValueError, match="one value per cell"):
        stats.truth_facts(np.zeros(10))


def test_arch_level_subsets(truth):
    c10 = truth.metric("cifar10_test")
    s = np.random.default_rng(3).normal(size=(6, 5))
    full = stats.arch_level(s, c10, "m")
    assert stats.arch_level(s, c10, "m", subsets=("all",)) == full[:1]
    with pytest.raises(ValueError, match="unknown protocol-1 subsets"):
        stats.arch_level(s, c10, subsets=("best",))


def test_bootstrap_of_the_mean_matches_one_resample_at_a_time():
    values = np.random.default_rng(4).exponential(size=37)
    fast = stats.bootstrap_ci(np.mean, values, n_boot=500, seed=3)
    plain = stats.bootstrap_ci(lambda v: float(np.mean(v)), values, n_boot=500, seed=3)
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-12)
