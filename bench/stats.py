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

import hashlib
import threading
from collections import OrderedDict
from functools import cached_property, lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import stats as _sp

from bench.nb201 import space

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

    Resamples whose statistic is NaN are dropped; returns (NaN, NaN) if all are.  ``np.mean`` of
    one array is taken over all resamples at once (row means of the resample matrix).
    """
    columns = [np.asarray(a, dtype=np.float64) for a in arrays]
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("bootstrap_ci needs arrays of equal length")
    if n == 0:
        return float("nan"), float("nan")
    resamples = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    if statistic is np.mean and len(columns) == 1:
        values = columns[0][resamples].mean(axis=1)
    else:
        values = np.array([statistic(*(c[idx] for c in columns)) for idx in resamples])
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


@lru_cache(maxsize=1)
def _unique_mask() -> np.ndarray:
    mask = np.zeros(space.NUM_CELLS, dtype=bool)
    mask[np.unique(space.iso_class_ids(), return_index=True)[1]] = True
    return _read_only(mask)


def unique_mask() -> np.ndarray:
    """One representative per isomorphism class (the lowest cell code), over cell codes."""
    return _unique_mask().copy()


def top_fraction_mask(truth: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Cells whose ground truth is in the top ``fraction`` of the finite values."""
    finite = np.isfinite(truth)
    threshold = np.quantile(truth[finite], 1.0 - fraction)
    return finite & (truth >= threshold)


def _descending(values: np.ndarray) -> np.ndarray:
    """Positions by descending value, ties by position, NaN last: the order of ``_top_k``."""
    return np.argsort(-values, kind="stable")


def _marginals(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


class TruthFacts:
    """What the protocols read from one ground-truth array (one value per cell code), each part
    computed on first use: a read-only copy of the array, its finite and top-10 % masks, its
    descending order and its op marginals.  Obtain through ``truth_facts`` (memoised by content)."""

    def __init__(self, values: np.ndarray):
        self.values = _read_only(np.array(values, dtype=np.float64))

    @cached_property
    def finite(self) -> np.ndarray:
        return _read_only(np.isfinite(self.values))

    @cached_property
    def top10(self) -> np.ndarray:
        return _read_only(top_fraction_mask(self.values))

    @cached_property
    def order(self) -> np.ndarray:
        return _read_only(_descending(self.values))

    @cached_property
    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        mean, best = _marginals(self.values)
        return _read_only(mean), _read_only(best)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


_FACTS: OrderedDict[str, TruthFacts] = OrderedDict()
_FACTS_LOCK = threading.Lock()
_FACTS_KEPT = 16


def truth_facts(truth: np.ndarray) -> TruthFacts:
    """The ``TruthFacts`` of a ground-truth array over all 15,625 cells, memoised by a digest of its
    bytes (an array changed in place is a new entry; the last 16 arrays are kept)."""
    values = np.ascontiguousarray(truth, dtype=np.float64)
    if values.shape != (space.NUM_CELLS,):
        raise ValueError(f"a ground-truth array has one value per cell ({space.NUM_CELLS}), "
                         f"got shape {values.shape}")
    key = hashlib.blake2b(values.tobytes(), digest_size=20).hexdigest()
    with _FACTS_LOCK:
        facts = _FACTS.get(key)
        if facts is None:
            facts = _FACTS[key] = TruthFacts(values)
            while len(_FACTS) > _FACTS_KEPT:
                _FACTS.popitem(last=False)
        _FACTS.move_to_end(key)
    return facts


# -- protocol 1 over the cells ------------------------------------------------------
def _subset_ranks(order: np.ndarray, values: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """The cells of ``keep`` by descending value (``order`` filtered), their average ranks (1 = best,
    ties share the mean rank) and their dense ranks, both in that order."""
    cells = order[keep[order]]
    v = values[cells]
    new = np.ones(len(cells), dtype=bool)
    new[1:] = v[1:] != v[:-1]
    dense = np.cumsum(new)
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(cells))
    return cells, ((starts + ends + 1) / 2.0)[dense - 1], dense


def _pearson_centered(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(np.clip(a @ b / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0))


def _arch_row(subset: str, metric: str, cell_scores: np.ndarray, score_order: np.ndarray,
              facts: TruthFacts, mask: np.ndarray) -> dict:
    """One protocol-1 row from the two descending orders: Kendall tau-b (scipy, exact O(n log n))
    on dense ranks, Spearman rho as the Pearson correlation of average ranks, precision@1 %."""
    keep = mask & facts.finite & np.isfinite(cell_scores)
    n = int(keep.sum())
    row = {"protocol": "1-arch", "subset": subset, "metric": metric, "n": n,
           "kendall_tau": float("nan"), "spearman": float("nan"), "precision_at_1pct": float("nan")}
    if n == 0:
        return row
    by_score, score_avg, score_dense = _subset_ranks(score_order, cell_scores, keep)
    by_truth, truth_avg, truth_dense = _subset_ranks(facts.order, facts.values, keep)
    k = min(max(1, n // 100), n)
    row["precision_at_1pct"] = len(np.intersect1d(by_score[:k], by_truth[:k])) / k
    if n < 2 or score_dense[-1] == 1 or truth_dense[-1] == 1:
        return row
    position = np.empty(space.NUM_CELLS, dtype=np.intp)
    position[by_score] = np.arange(n)
    paired = position[by_truth]  # each cell of by_truth: its place in by_score
    dtype = np.int16 if n < np.iinfo(np.int16).max else np.intp
    row["kendall_tau"] = float(_sp.kendalltau(score_dense[paired].astype(dtype), truth_dense.astype(dtype),
                                              variant="b").statistic)
    row["spearman"] = _pearson_centered(score_avg[paired], truth_avg)
    return row


def _arch_rows(cell_scores: np.ndarray, score_order: np.ndarray, facts: TruthFacts, metric: str,
               subsets: Sequence[str]) -> list[dict]:
    masks = {"all": lambda: np.ones(space.NUM_CELLS, bool), "unique": _unique_mask,
             "top10": lambda: facts.top10}
    return [_arch_row(s, metric, cell_scores, score_order, facts, masks[s]()) for s in subsets]


def arch_level(scores: np.ndarray, truth: np.ndarray, metric: str = "",
               subsets: Sequence[str] = SUBSETS) -> list[dict]:
    """Protocol 1 over all cells, unique cells and the top 10 % (or the named ``subsets``); plus
    precision@k (k = 1 %)."""
    unknown = set(subsets) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown protocol-1 subsets {sorted(unknown)}; known: {', '.join(SUBSETS)}")
    cell_scores = additive_scores(scores)
    return _arch_rows(cell_scores, _descending(cell_scores), truth_facts(truth), metric, subsets)


# -- protocols 2 and 3 over the ops of each edge ----------------------------------------
def _pair_signs(x: np.ndarray) -> np.ndarray:
    """sign(x[r, i] - x[r, j]) for every row r and pair (i, j) as int8; 0 where a NaN is involved."""
    return (x[:, :, None] > x[:, None, :]).astype(np.int8) - (x[:, :, None] < x[:, None, :])


def edge_correlations(scores: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and Spearman rho between each row of ``scores`` and of ``target`` (m x k) over
    the row's finite pairs, vectorised over rows; NaN where fewer than 2 pairs or a side is constant.
    Tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)) (Kendall 1945) from the pair counts, as scipy's
    ``kendalltau``; rho = Pearson correlation of average ranks, as scipy's ``spearmanr``."""
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(f"paired matrices differ in shape or are not 2-D: {s.shape} vs {t.shape}")
    valid = np.isfinite(s) & np.isfinite(t)
    both = valid[:, :, None] & valid[:, None, :]
    pairs = both & np.triu(np.ones((s.shape[1],) * 2, dtype=bool), 1)
    sign_s, sign_t = _pair_signs(s) * both, _pair_signs(t) * both
    total = pairs.sum(axis=(1, 2))
    untied_s = total - (pairs & (sign_s == 0)).sum(axis=(1, 2))
    untied_t = total - (pairs & (sign_t == 0)).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (sign_s * sign_t * pairs).sum(axis=(1, 2)) / np.sqrt(untied_s) / np.sqrt(untied_t)
        tau = np.where((untied_s > 0) & (untied_t > 0), np.clip(tau, -1.0, 1.0), np.nan)
        # average rank - mean rank = (#smaller - #larger) / 2 among the row's finite pairs
        centred_s, centred_t = sign_s.sum(axis=2) / 2.0, sign_t.sum(axis=2) / 2.0
        ss, tt = (centred_s**2).sum(axis=1), (centred_t**2).sum(axis=1)
        rho = (centred_s * centred_t).sum(axis=1) / np.sqrt(ss * tt)
        rho = np.where((ss > 0) & (tt > 0), np.clip(rho, -1.0, 1.0), np.nan)
    return tau, rho


def _mean_defined(values: Sequence[float]) -> float:
    defined = [v for v in values if np.isfinite(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def op_marginals(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Benchmark marginals (6 x 5): mean and max accuracy of the 3,125 cells with op o on edge e."""
    mean, best = truth_facts(truth).marginals
    return mean.copy(), best.copy()


def per_edge_tau(scores: np.ndarray, target: np.ndarray) -> tuple[float, list[float]]:
    """Tau over the 5 ops on each edge, and its mean over the edges where it is defined."""
    taus = _floats(edge_correlations(check_scores(scores), target)[0])
    return _mean_defined(taus), taus


def _marginal_rows(scores: np.ndarray, facts: TruthFacts, metric: str) -> list[dict]:
    rows = []
    for subset, target in zip(("mean", "max"), facts.marginals):
        tau, rho = edge_correlations(scores, target)
        rows.append({"protocol": "2-op-marginal", "subset": subset, "metric": metric, "n": space.NUM_EDGES,
                     "kendall_tau": _mean_defined(tau), "spearman": _mean_defined(rho),
                     "per_edge_tau": _floats(tau)})
    return rows


def op_level_marginal(scores: np.ndarray, truth: np.ndarray, metric: str = "") -> list[dict]:
    """Protocol 2 against the marginal mean and the marginal max."""
    return _marginal_rows(check_scores(scores), truth_facts(truth), metric)


def per_edge_spearman(scores: np.ndarray, target: np.ndarray) -> tuple[float, list[float], int]:
    """Spearman rho over the ops of each edge, its mean over the edges where it is defined and their
    number.  An edge enters when it has at least 2 finite (score, target) pairs and neither side is
    constant there (rho is undefined otherwise): the mean over edges of Xiang et al.'s analysis
    notebooks (zc-pt, AAAI 2023), whose pandas correlations skip missing values the same way."""
    rhos = _floats(edge_correlations(check_scores(scores), target)[1])
    return _mean_defined(rhos), rhos, int(np.isfinite(rhos).sum())


def _marginal_spearman_rows(scores: np.ndarray, facts: TruthFacts, metric: str) -> list[dict]:
    rows = []
    for subset, target in zip(("spearman-mean", "spearman-max"), facts.marginals):
        tau, rho = edge_correlations(scores, target)
        same = tau[np.isfinite(rho) & np.isfinite(tau)]
        rows.append({"protocol": "2-op-marginal", "subset": subset, "metric": metric,
                     "n": int(np.isfinite(rho).sum()), "kendall_tau": _mean_defined(_floats(same)),
                     "spearman": _mean_defined(rho), "per_edge_spearman": _floats(rho)})
    return rows


def op_level_marginal_spearman(scores: np.ndarray, truth: np.ndarray, metric: str = "") -> list[dict]:
    """Protocol 2 with Spearman per edge (zc-pt's published comparison): per edge, rho between the
    op scores and the mean (subset ``spearman-mean``) or max (``spearman-max``) accuracy of the
    3,125 cells holding each op there; ``spearman`` = mean over the edges where rho is defined,
    ``n`` = how many, ``kendall_tau`` = the mean per-edge tau over those same edges."""
    return _marginal_spearman_rows(check_scores(scores), truth_facts(truth), metric)


def conditional_truth(truth: np.ndarray, reference: Sequence[int]) -> np.ndarray:
    """GTcond (6 x 5): accuracy of the reference cell with edge e set to op o."""
    reference = space.validate_cell(reference)
    variants = np.tile(np.asarray(reference), (space.NUM_EDGES, space.NUM_OPS, 1))
    edges = np.arange(space.NUM_EDGES)
    variants[edges, :, edges] = np.arange(space.NUM_OPS)
    return np.asarray(truth, dtype=np.float64)[space.codes_of(variants)]


def op_level_conditional(scores: np.ndarray, truth: np.ndarray, reference: Sequence[int],
                         metric: str = "", label: str = "reference") -> dict:
    """Protocol 3 around ``reference`` (the derived cell or the optimum)."""
    target = conditional_truth(truth, reference)
    tau, rho = edge_correlations(check_scores(scores), target)
    return {"protocol": "3-op-conditional", "subset": label, "metric": metric, "n": space.NUM_EDGES,
            "kendall_tau": _mean_defined(tau), "spearman": _mean_defined(rho),
            "per_edge_tau": _floats(tau), "reference": space.to_string(reference)}


def supernet_level(measured: Sequence[float], truth_values: Sequence[float], metric: str = "") -> dict:
    """Protocol 4: accuracies measured inside a supernet for sampled cells vs their benchmark values."""
    row = _rank_row("4-supernet", "sample", metric, np.asarray(measured), np.asarray(truth_values))
    row["precision_at_10pct"] = precision_at_k(measured, truth_values, max(1, row["n"] // 10))
    return row


def _rank_row(protocol: str, subset: str, metric: str, a: np.ndarray, b: np.ndarray) -> dict:
    a, b = _finite_pairs(a, b)
    return {"protocol": protocol, "subset": subset, "metric": metric, "n": int(len(a)),
            "kendall_tau": kendall_tau(a, b), "spearman": spearman(a, b)}


def rank_report(scores: np.ndarray, truth_by_metric: dict[str, np.ndarray],
                derived: Sequence[int] | None = None) -> list[dict]:
    """Protocols 1-3 for one op-score matrix on each metric; protocol 3 around the derived
    cell (default: the per-edge argmax of S) and around the metric's optimum.  What depends on a
    metric's table alone is computed once per table (``truth_facts``), the cell scores' order once."""
    derived = space.select_cell(scores) if derived is None else space.validate_cell(derived)
    s = check_scores(scores)
    cell_scores = additive_scores(s)
    score_order = _descending(cell_scores)
    rows: list[dict] = []
    for metric, truth in truth_by_metric.items():
        facts = truth_facts(truth)
        rows += _arch_rows(cell_scores, score_order, facts, metric, SUBSETS)
        rows += _marginal_rows(s, facts, metric)
        rows += _marginal_spearman_rows(s, facts, metric)
        rows.append(op_level_conditional(s, facts.values, derived, metric, "derived"))
        optimum = space.from_code(int(np.nanargmax(facts.values)))
        rows.append(op_level_conditional(s, facts.values, optimum, metric, "optimum"))
    return rows
