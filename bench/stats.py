"""Rank statistics and the rank-correlation protocols of ``docs/criteria.md`` §6 (pure functions).

Headline statistic: Kendall tau-b (ties handled, Kendall 1945), with Spearman rho and
top-k agreement beside it.  Protocols, for an op-score matrix S (6 x 5, higher = more
important, NaN = unavailable):

1. architecture level: score(a) = sum_e S[e, a_e] (additive), tau against the benchmark
   over all 15,625 cells, the 6,466 isomorphism-unique ones, and the top 10 %;
2. operation level, benchmark marginal: per edge, tau over ops between S[e, :] and the
   mean (and max) accuracy of the 3,125 cells with that op on that edge; mean over edges;
   the same with Spearman per edge (subsets ``spearman-mean`` / ``spearman-max``, the
   comparison zc-pt's authors published), with the number of edges where it is defined;
3. operation level, conditional: per edge, tau between S[e, :] and the accuracy of a
   reference cell with edge e set to each op; mean over edges;
4. supernet level: tau between accuracies measured inside a supernet and the benchmark.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats as _sp

from bench import space

SUBSETS = ("all", "unique", "top10")


def _finite_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired arrays differ in shape: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall tau-b over the finite pairs; NaN if fewer than 2 pairs or a constant side."""
    a, b = _finite_pairs(np.asarray(x), np.asarray(y))
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(_sp.kendalltau(a, b, variant="b").statistic)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rho over the finite pairs (ties get average ranks)."""
    a, b = _finite_pairs(np.asarray(x), np.asarray(y))
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(_sp.spearmanr(a, b).statistic)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a, b = _finite_pairs(np.asarray(x), np.asarray(y))
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values; ties broken by position (stable)."""
    order = np.argsort(-values, kind="stable")
    return order[:k]


def precision_at_k(scores: Sequence[float], truth: Sequence[float], k: int) -> float:
    """|top-k by score  ∩  top-k by truth| / k over finite pairs (Ning et al., 2021)."""
    a, b = _finite_pairs(np.asarray(scores), np.asarray(truth))
    k = min(int(k), len(a))
    if k <= 0:
        return float("nan")
    return len(np.intersect1d(_top_k(a, k), _top_k(b, k))) / k


def top_k_overlap(scores: Sequence[float], truth: Sequence[float], k: int) -> float:
    """Jaccard overlap |A ∩ B| / |A ∪ B| of the two top-k sets."""
    a, b = _finite_pairs(np.asarray(scores), np.asarray(truth))
    k = min(int(k), len(a))
    if k <= 0:
        return float("nan")
    top_a, top_b = _top_k(a, k), _top_k(b, k)
    return len(np.intersect1d(top_a, top_b)) / len(np.union1d(top_a, top_b))


def bootstrap_ci(statistic: Callable[..., float], *arrays: Sequence[float], n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*arrays)``, rows resampled jointly (Efron 1979).

    Resamples whose statistic is NaN are dropped; returns (NaN, NaN) if all are.
    """
    columns = [np.asarray(a, dtype=np.float64) for a in arrays]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("bootstrap_ci needs arrays of equal length")
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*(c[idx] for c in columns))
                       for idx in rng.integers(0, n, size=(n_boot, n))])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def paired_comparison(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Paired comparison of two criteria measured on the same supernets (``a[i]``, ``b[i]``).

    Returns the mean difference a - b, its percentile bootstrap interval (pairs resampled),
    and the two-sided sign-flip permutation p-value of the mean difference (Fisher 1935):
    exact over all 2^n sign patterns for n <= 16, else ``n_boot`` random patterns.  Pairs
    with a NaN are dropped; n < 2 gives NaN interval and p-value 1.
    """
    x, y = _finite_pairs(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    d = x - y
    n = int(d.size)
    out = {"n": n, "mean_diff": float(d.mean()) if n else float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "p_value": 1.0}
    if n < 2:
        return out
    out["ci_low"], out["ci_high"] = bootstrap_ci(np.mean, d, n_boot=n_boot, level=level, seed=seed)
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_boot, n))
    null = np.abs((signs * d).mean(axis=1))
    out["p_value"] = float(np.mean(null >= abs(d.mean()) - 1e-12))
    return out


# -- op-score matrices -----------------------------------------------------------
def check_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (space.NUM_EDGES, space.NUM_OPS):
        raise ValueError(f"an op-score matrix has shape (6, 5), got {s.shape}")
    return s


def additive_scores(scores: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
    """score(a) = sum_e S[e, a_e] for every cell (default: all 15,625, by cell code); NaN if
    the cell uses an unavailable op.  For magnitude S = log softmax(alpha), so the score
    is the cell's log-probability under the factorised categorical."""
    s = check_scores(scores)
    cells = space.all_cells() if cells is None else np.asarray(cells)
    return s[np.arange(space.NUM_EDGES)[None, :], cells].sum(axis=1)


def unique_mask() -> np.ndarray:
    """One representative per isomorphism class (the lowest cell code), over cell codes."""
    ids = space.iso_class_ids()
    mask = np.zeros(space.NUM_CELLS, dtype=bool)
    mask[np.unique(ids, return_index=True)[1]] = True
    return mask


def top_fraction_mask(truth: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Cells whose ground truth is in the top ``fraction`` of the finite values."""
    finite = np.isfinite(truth)
    threshold = np.quantile(truth[finite], 1.0 - fraction)
    return finite & (truth >= threshold)


def _rank_row(protocol: str, subset: str, metric: str, a: np.ndarray, b: np.ndarray) -> dict:
    a, b = _finite_pairs(a, b)
    return {"protocol": protocol, "subset": subset, "metric": metric, "n": int(len(a)),
            "kendall_tau": kendall_tau(a, b), "spearman": spearman(a, b)}


def arch_level(scores: np.ndarray, truth: np.ndarray, metric: str = "") -> list[dict]:
    """Protocol 1 over all cells, unique cells and the top 10 %; plus precision@k (k = 1 %)."""
    cell_scores = additive_scores(scores)
    rows = []
    masks = {"all": np.ones(space.NUM_CELLS, bool), "unique": unique_mask(), "top10": top_fraction_mask(truth)}
    for subset, mask in masks.items():
        row = _rank_row("1-arch", subset, metric, cell_scores[mask], truth[mask])
        row["precision_at_1pct"] = precision_at_k(cell_scores[mask], truth[mask], max(1, row["n"] // 100))
        rows.append(row)
    return rows


def op_marginals(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Benchmark marginals (6 x 5): mean and max accuracy of the 3,125 cells with op o on edge e."""
    cells = space.all_cells()
    mean = np.full((space.NUM_EDGES, space.NUM_OPS), np.nan)
    best = np.full_like(mean, np.nan)
    for e in range(space.NUM_EDGES):
        for o in range(space.NUM_OPS):
            values = truth[cells[:, e] == o]
            values = values[np.isfinite(values)]
            if values.size:
                mean[e, o], best[e, o] = values.mean(), values.max()
    return mean, best


def per_edge_tau(scores: np.ndarray, target: np.ndarray) -> tuple[float, list[float]]:
    """Tau over the 5 ops on each edge, and its mean over the edges where it is defined."""
    s = check_scores(scores)
    taus = [kendall_tau(s[e], target[e]) for e in range(space.NUM_EDGES)]
    defined = [t for t in taus if np.isfinite(t)]
    return (float(np.mean(defined)) if defined else float("nan")), taus


def op_level_marginal(scores: np.ndarray, truth: np.ndarray, metric: str = "") -> list[dict]:
    """Protocol 2 against the marginal mean and the marginal max."""
    mean, best = op_marginals(truth)
    rows = []
    for subset, target in (("mean", mean), ("max", best)):
        tau, taus = per_edge_tau(scores, target)
        rho = [spearman(check_scores(scores)[e], target[e]) for e in range(space.NUM_EDGES)]
        rho_defined = [r for r in rho if np.isfinite(r)]
        rows.append({"protocol": "2-op-marginal", "subset": subset, "metric": metric, "n": space.NUM_EDGES,
                     "kendall_tau": tau, "spearman": float(np.mean(rho_defined)) if rho_defined else float("nan"),
                     "per_edge_tau": taus})
    return rows


def per_edge_spearman(scores: np.ndarray, target: np.ndarray) -> tuple[float, list[float], int]:
    """Spearman rho over the ops of each edge, its mean over the edges where it is defined and their
    number.  An edge enters when it has at least 2 finite (score, target) pairs and neither side is
    constant there (rho is undefined otherwise): the mean over edges of Xiang et al.'s analysis
    notebooks (zc-pt, AAAI 2023), whose pandas correlations skip missing values the same way."""
    s = check_scores(scores)
    rhos = [spearman(s[e], target[e]) for e in range(space.NUM_EDGES)]
    defined = [r for r in rhos if np.isfinite(r)]
    return (float(np.mean(defined)) if defined else float("nan")), rhos, len(defined)


def op_level_marginal_spearman(scores: np.ndarray, truth: np.ndarray, metric: str = "") -> list[dict]:
    """Protocol 2 with Spearman per edge (zc-pt's published comparison): per edge, rho between the
    op scores and the mean (subset ``spearman-mean``) or max (``spearman-max``) accuracy of the
    3,125 cells holding each op there; ``spearman`` = mean over the edges where rho is defined,
    ``n`` = how many, ``kendall_tau`` = the mean per-edge tau over those same edges."""
    rows = []
    for subset, target in zip(("spearman-mean", "spearman-max"), op_marginals(truth)):
        rho, rhos, n = per_edge_spearman(scores, target)
        taus = [kendall_tau(check_scores(scores)[e], target[e]) for e in range(space.NUM_EDGES)]
        same = [t for t, r in zip(taus, rhos) if np.isfinite(r) and np.isfinite(t)]
        rows.append({"protocol": "2-op-marginal", "subset": subset, "metric": metric, "n": n,
                     "kendall_tau": float(np.mean(same)) if same else float("nan"), "spearman": rho,
                     "per_edge_spearman": rhos})
    return rows


def conditional_truth(truth: np.ndarray, reference: Sequence[int]) -> np.ndarray:
    """GTcond (6 x 5): accuracy of the reference cell with edge e set to op o."""
    reference = space.validate_cell(reference)
    table = np.empty((space.NUM_EDGES, space.NUM_OPS))
    for e in range(space.NUM_EDGES):
        for o in range(space.NUM_OPS):
            variant = list(reference)
            variant[e] = o
            table[e, o] = truth[space.to_code(variant)]
    return table


def op_level_conditional(scores: np.ndarray, truth: np.ndarray, reference: Sequence[int],
                         metric: str = "", label: str = "reference") -> dict:
    """Protocol 3 around ``reference`` (the derived cell or the optimum)."""
    target = conditional_truth(truth, reference)
    tau, taus = per_edge_tau(scores, target)
    rho = [spearman(check_scores(scores)[e], target[e]) for e in range(space.NUM_EDGES)]
    rho_defined = [r for r in rho if np.isfinite(r)]
    return {"protocol": "3-op-conditional", "subset": label, "metric": metric, "n": space.NUM_EDGES,
            "kendall_tau": tau, "spearman": float(np.mean(rho_defined)) if rho_defined else float("nan"),
            "per_edge_tau": taus, "reference": space.to_string(reference)}


def supernet_level(measured: Sequence[float], truth_values: Sequence[float], metric: str = "") -> dict:
    """Protocol 4: accuracies measured inside a supernet for sampled cells vs their benchmark values."""
    row = _rank_row("4-supernet", "sample", metric, np.asarray(measured), np.asarray(truth_values))
    row["precision_at_10pct"] = precision_at_k(measured, truth_values, max(1, row["n"] // 10))
    return row


def rank_report(scores: np.ndarray, truth_by_metric: dict[str, np.ndarray],
                derived: Sequence[int] | None = None) -> list[dict]:
    """Protocols 1-3 for one op-score matrix on each metric; protocol 3 around the derived
    cell (default: the per-edge argmax of S) and around the metric's optimum."""
    derived = space.select_cell(scores) if derived is None else space.validate_cell(derived)
    rows: list[dict] = []
    for metric, truth in truth_by_metric.items():
        rows += arch_level(scores, truth, metric)
        rows += op_level_marginal(scores, truth, metric)
        rows += op_level_marginal_spearman(scores, truth, metric)
        rows.append(op_level_conditional(scores, truth, derived, metric, "derived"))
        optimum = space.from_code(int(np.nanargmax(truth)))
        rows.append(op_level_conditional(scores, truth, optimum, metric, "optimum"))
    return rows
