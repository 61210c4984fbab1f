"""Reports on small synthetic results folders (no training): everything is scored at read time
against the table given, so the expected numbers are the benchmark's own."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.atomic import append_jsonl, write_json
from bench.cli import main
from bench.nb201 import space
from bench.nb201.benchmark import GroundTruth
from bench.opscores import to_jsonable
from bench.report import aggregate, build, curves, frames, procedure, published, reference, table, tau
from bench.search import config

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
SKIP = reference.ALL_SKIP
CRIT = "ostr"
CRIT_CELL = {0: GOOD, 1: CONV, 2: MIXED}
"""The data criterion's cell per seed (other seeds: GOOD); magnitude always selects the all-skip cell."""


def scores_for(cell: str, seed: int, spread: float = 0.5) -> np.ndarray:
    """Op scores whose per-edge argmax is ``cell``, with seeded noise below the margin."""
    rng = np.random.default_rng(seed)
    out = rng.random((space.NUM_EDGES, space.NUM_OPS)) * spread
    out[np.arange(space.NUM_EDGES), list(space.parse(cell))] += 1.0
    return out


def alpha_for(cell: str, seed: int) -> list:
    """An alpha whose argmax is ``cell``; no two cells tie on its magnitude scores."""
    return scores_for(cell, 100 + seed).tolist()


def make_run(root: Path, seed: int, truth, epochs_done: int | None = None, total: int = 3,
             sha: str | None = None, method: str = "darts", profile: str = "smoke", overrides=(),
             selections=None, old_format=False, name: str | None = None, own: str | None = None) -> Path:
    """A run folder as ``search`` and ``select`` write it; ``selections`` maps criterion to
    (cell, extra record fields); ``old_format`` adds the scored fields records used to store,
    with stale values that must not be read; ``own``: the cell of the method's own scores."""
    cfg = config.resolve(profile, [f"epochs={total}", *overrides], method=method)
    epochs_done = total if epochs_done is None else epochs_done
    path = root / (name or f"{method}-{profile}-s{seed}-synthetic")
    write_json(path / "config.json", {"config": cfg.to_dict(), "seed": seed, "profile": profile,
                                      "benchmark": {"source": truth.source, "sha256": sha or truth.sha256},
                                      "commit": "synthetic"})
    if selections is None:
        selections = {"magnitude": (SKIP, {}), CRIT: (CRIT_CELL.get(seed, GOOD), {"valid_size": 64})}
    for epoch in range(1, epochs_done + 1):
        cell = GOOD if epoch == 1 else SKIP
        weights = np.full((6, 5), 0.2)
        weights[:, 1] += 0.02 * epoch
        record = {"epoch": epoch, "valid_acc": 40.0 + 10 * epoch + seed, "seconds": 10.0,
                  "alpha": alpha_for(cell, seed), "op_mask": np.ones((6, 5), bool).tolist(),
                  "weights": (weights / weights.sum(1, keepdims=True)).tolist()}
        if own:
            own_scores = to_jsonable(scores_for(own, 200 + seed))
            record["method"] = {"name": method, "scores": own_scores, "cell": own}
        if old_format:
            record.update(cell=cell, accuracies={"cifar10_test": 1.0}, parameter_free_ops=0,
                          tau_arch={"kendall_tau": 0.99, "spearman": 0.99, "metric": "cifar10_test"})
        append_jsonl(path / "epochs.jsonl", record)
        for k, (criterion, (chosen, extra)) in enumerate(selections.items()):
            scores = to_jsonable(scores_for(chosen, seed * 10 + k))
            record = {"epoch": epoch, "criterion": criterion, "scores": scores, "cell": chosen, "options": {},
                      "info": {}, "allow_none": True, "valid_size": 64,
                      "cost": {"seconds": 2.0, "epoch_equivalents": 0.2}, **extra}
            if old_format:
                record.update(accuracies={"cifar10_test": 1.0}, parameter_free_ops=0, cell_index=0,
                              rank=[{"protocol": "1-arch", "subset": "all", "metric": "cifar10_test",
                                     "kendall_tau": 0.99, "spearman": 0.99, "n": 15625}])
            append_jsonl(path / "selections.jsonl", record)
    if epochs_done == total:
        write_json(path / "done", {"epochs": total})
    return path


def arch_tau(cell: str, seed: int, truth) -> float:
    """Protocol 1 (all cells, CIFAR-10 test) of the scores ``make_run`` writes, computed directly."""
    return stats.arch_level(scores_for(cell, seed), truth.metric("cifar10_test"))[0]["kendall_tau"]


def crit_mean_std(truth) -> tuple[float, float]:
    """Mean and sample standard deviation (by hand) of the CIFAR-10 test accuracy of the data
    criterion's three cells (``CRIT_CELL``)."""
    values = np.array([truth.lookup(c, ["cifar10_test"])["cifar10_test"] for c in (GOOD, CONV, MIXED)])
    mean = values.sum() / 3
    return mean, float(np.sqrt(((values - mean) ** 2).sum() / 2))


@pytest.fixture()
def experiment(tmp_path, truth):
    root = tmp_path / "results" / "synthetic"
    for seed in CRIT_CELL:
        make_run(root, seed, truth)
    make_run(root, 7, truth, epochs_done=2, total=3)  # unfinished: must be left out
    return root


def test_aggregate_scores_at_read_time(experiment, truth):
    exp = aggregate.load(experiment, truth)
    assert {r.state for r in exp.runs} == {"done", "incomplete"}
    assert [r.run for r in exp.incomplete_runs] == ["darts-smoke-s7-synthetic"]
    sel = exp.selections
    # 3 epochs x 3 criteria (search + 2) x 3 seeds, plus 2 epochs x 3 of the unfinished run
    assert len(sel) == 27 + 6
    final = frames.at_final_epoch(frames.complete(sel))
    assert sorted(final["seed"].unique()) == [0, 1, 2] and (final["epoch"] == 3).all()
    assert set(final["criterion"]) == {"search", "magnitude", CRIT}
    pt = final[final["criterion"] == CRIT].sort_values("seed")
    assert pt["cell"].tolist() == [GOOD, CONV, MIXED]
    assert pt["acc:cifar10_test"].tolist() == [truth.lookup(c, ["cifar10_test"])["cifar10_test"]
                                               for c in (GOOD, CONV, MIXED)]
    own = sel[(sel["criterion"] == "search") & (sel["seed"] == 0)].sort_values("epoch")
    assert own["cell"].tolist() == [GOOD, SKIP, SKIP]  # argmax of each epoch's alpha
    assert own["parameter_free_ops"].tolist() == [1, 6, 6]
    ranks = exp.ranks
    row = ranks[(ranks["criterion"] == CRIT) & (ranks["seed"] == 1) & (ranks["epoch"] == 3)
                & (ranks["protocol"] == "1-arch") & (ranks["subset"] == "all")
                & (ranks["metric"] == "cifar10_test")]
    assert row["kendall_tau"].tolist() == [pytest.approx(arch_tau(CONV, 11, truth))]
    marginal = ranks[(ranks["protocol"] == "2-op-marginal") & (ranks["subset"] == "mean")]
    assert (marginal["edges"] == 6).all() and (marginal["ops"] == "5").all()
    arch = ranks[(ranks["protocol"] == "1-arch") & (ranks["criterion"] == CRIT)]
    assert (arch["ops"] == "5").all() and arch["edges"].isna().all()


def test_old_and_new_record_formats_give_the_same_frames(tmp_path, truth):
    """Records that still hold accuracies, rank rows and tau (stale here) load to the numbers
    computed now, the same as records holding only what was measured."""
    old, new = tmp_path / "results" / "old", tmp_path / "results" / "new"
    for seed in (0, 1):
        make_run(old, seed, truth, old_format=True)
        make_run(new, seed, truth)
    a, b = aggregate.load(old, truth), aggregate.load(new, truth)
    pd.testing.assert_frame_equal(a.selections, b.selections)
    pd.testing.assert_frame_equal(a.ranks, b.ranks)
    assert 1.0 not in set(a.selections["acc:cifar10_test"]) and 0.99 not in set(a.ranks["kendall_tau"])
    own_tau = a.ranks[(a.ranks["criterion"] == "search") & (a.ranks["epoch"] == 1) & (a.ranks["seed"] == 0)]
    alpha = np.array(alpha_for(GOOD, 0))
    magnitude = alpha - np.log(np.exp(alpha).sum(axis=1, keepdims=True))  # log softmax
    expected = stats.arch_level(magnitude, truth.metric("cifar10_test"))[0]["kendall_tau"]
    assert own_tau["kendall_tau"].tolist() == [pytest.approx(expected)]


def test_own_cell_and_tau_from_the_methods_scores(tmp_path, truth):
    """A method that derives its cell itself (NAP's gates) stores its scores: they give the own
    cell and its arch-level tau, not alpha's argmax."""
    root = tmp_path / "results" / "own"
    make_run(root, 1, truth, method="nap", selections={}, own=MIXED)
    exp = aggregate.load(root, truth)
    assert set(exp.selections["cell"]) == {MIXED}
    taus = exp.ranks.loc[exp.ranks["criterion"] == "search", "kendall_tau"]
    assert len(taus) == 3 and np.allclose(taus, arch_tau(MIXED, 201, truth))


def test_another_table_needs_no_rerun(tmp_path, truth):
    """Runs made with one table are scored against the one given; the provenance names it."""
    root = tmp_path / "results" / "other"
    make_run(root, 0, truth, sha="0" * 64)
    shifted = GroundTruth(metrics={k: v + 1.0 for k, v in truth.metrics.items()}, index=truth.index,
                          source="shifted.csv", sha256="f" * 64)
    base = frames.at_final_epoch(aggregate.load(root, truth).selections)
    moved = frames.at_final_epoch(aggregate.load(root, shifted).selections)
    assert np.allclose(moved["acc:cifar10_test"], base["acc:cifar10_test"] + 1.0)
    exp = aggregate.load(root, shifted)
    prov = table.provenance(exp, shifted)
    assert prov["benchmark"] == "shifted.csv" and prov["searched_with_other_tables"] == ["0" * 12]
    md = table.to_markdown(table.comparison(exp, shifted, (10,)), prov)
    assert "every number scored now against this table" in md


def test_fix_alpha_own_cell_is_the_projection(tmp_path, truth):
    """DARTS-fix-alpha's alpha never trains: its own cell is darts-pt-proj's, not argmax alpha."""
    root = tmp_path / "results" / "fix"
    path = make_run(root, 0, truth, method="darts-fix-alpha")
    append_jsonl(path / "selections.jsonl", {"epoch": 3, "criterion": "darts-pt-proj", "cell": CONV,
                                             "scores": to_jsonable(scores_for(GOOD, 5)), "valid_size": 0})
    exp = aggregate.load(root, truth)
    own = exp.selections[exp.selections["criterion"] == frames.SEARCH]
    assert own["epoch"].tolist() == [3] and own["cell"].tolist() == [CONV]  # the projection's, not the argmax
    assert own["acc:cifar10_test"].tolist() == [truth.lookup(CONV, ["cifar10_test"])["cifar10_test"]]
    assert frames.SEARCH not in set(exp.ranks["criterion"])


def test_comparison_table_mean_std_and_provenance(experiment, truth):
    exp = aggregate.load(experiment, truth)
    frame = table.comparison(exp, truth, random_ns=(10,))
    pt = frame[(frame["kind"] == "measured") & (frame["criterion"] == CRIT)].iloc[0]
    mean, std = crit_mean_std(truth)
    assert pt["seeds"] == 3 and pt["label"] == "darts / ostr"
    assert pt["cifar10_test"] == pytest.approx(mean) and pt["cifar10_test:std"] == pytest.approx(std)
    options = dict(sorted(aggregate.resolved_options(CRIT, {}).items()))
    assert pt["selection"] == f"{CRIT} ({procedure.fields_text(options)}), validation 64 images"
    kinds = frame.groupby("kind").size()
    assert kinds["published"] >= 5 and kinds["reference"] == 3
    optimum = frame[frame["label"].str.startswith("optimum")].iloc[0]
    assert optimum["cifar10_test"] == pytest.approx(float(np.nanmax(truth.metric("cifar10_test"))))
    prov = table.provenance(exp, truth)
    assert prov["seeds"] == [0, 1, 2]
    assert prov["left_out"][0].startswith("darts-smoke-s7-synthetic (incomplete")
    assert prov["profiles"] == ["smoke (3 epochs, C=4, N=1, 512/512 images)"]
    md = table.to_markdown(frame, prov)
    assert f"{mean:.2f} ± {std:.2f}" in md and "left out (not finished)" in md and truth.sha256 in md
    assert "[NB201 Table 5]" in md and "54.30 ± 0.00" in md
    assert "- S1: profile smoke (3 epochs, C=4, N=1, 512/512 images); method darts; epoch 3" in md
    tex = table.to_latex(frame, prov)
    assert "\\toprule" in tex and "\\bottomrule" in tex and f"{mean:.2f} $\\pm$ {std:.2f}" in tex
    assert "Published, other procedure" in tex
    csv = table.to_csv(frame, prov)
    assert csv.splitlines()[0].startswith("kind,block,label") and "# benchmark" in csv


def test_cost_columns_are_the_cells_networks(experiment, truth):
    from bench.nets import cellcost

    exp = aggregate.load(experiment, truth)
    final = frames.at_final_epoch(frames.complete(exp.selections))
    skip = final[final["criterion"] == "magnitude"]
    assert np.allclose(skip["params_m"], cellcost.cell_cost(SKIP)["params_m"])
    frame = table.comparison(exp, truth, random_ns=(10,))
    pt = frame[frame["criterion"] == CRIT].iloc[0]
    flops = [cellcost.cell_cost(c)["flops_m"] for c in (GOOD, CONV, MIXED)]
    assert pt["flops_m"] == pytest.approx(np.mean(flops))
    assert pt["flops_m:std"] == pytest.approx(np.std(flops, ddof=1))
    md = table.to_markdown(frame, table.provenance(exp, truth))
    assert "| skip connections | params (M) | FLOPs (M) |" in md
    # skip connections: 1 (GOOD), 0 (CONV), 1 (MIXED) over three seeds; the all-skip reference row has 6
    assert pt["skip_connections"] == pytest.approx(2 / 3) and pt["skip_connections:std"] == pytest.approx(
        np.std([1, 0, 1], ddof=1))
    assert frame.loc[frame["label"] == "all-skip cell", "skip_connections"].item() == 6
    assert (skip["skip_connections"] == 6).all()


def test_the_footer_names_every_commit_that_wrote_a_run(tmp_path, truth):
    """A run created by one commit, resumed by another and selected on by a third names all three."""
    root = tmp_path / "results" / "resumed"
    path = make_run(root, 0, truth)
    epochs = [json.loads(line) for line in (path / "epochs.jsonl").read_text().splitlines()]
    epochs[-1]["commit"] = "b" * 40
    (path / "epochs.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    with open(path / "selections.jsonl", "a") as handle:
        handle.write(json.dumps({"epoch": 3, "criterion": "random", "cell": GOOD, "options": {}, "info": {},
                                 "allow_none": True, "scores": to_jsonable(scores_for(GOOD, 5)),
                                 "commit": "c" * 40}) + "\n")
    write_json(path / "done", {"epochs": 3, "commit": "b" * 40})
    exp = aggregate.load(root, truth)
    assert exp.runs[0].commits == ("b" * 40, "c" * 40, "synthetic")
    prov = table.provenance(exp, truth)
    assert prov["run_commits"] == ["b" * 40, "c" * 40, "synthetic"]
    assert f"(runs made at {'b' * 40}, {'c' * 40}, synthetic)" in table.to_markdown(
        table.comparison(exp, truth, random_ns=(10,)), prov)


def test_one_seed_shows_no_spread(tmp_path, truth):
    root = tmp_path / "results" / "one"
    make_run(root, 0, truth)
    frame = table.comparison(aggregate.load(root, truth), truth, random_ns=(10,))
    pt = frame[frame["criterion"] == CRIT].iloc[0]
    assert pt["seeds"] == 1 and np.isnan(pt["cifar10_test:std"])


def test_runs_of_different_configs_are_never_pooled(tmp_path, truth):
    """A C=4 and a C=8 run are two rows labelled by what differs, not one mean with a spread."""
    root = tmp_path / "results" / "mixed"
    make_run(root, 0, truth, name="a")
    make_run(root, 1, truth, overrides=("C=8",), name="b")
    exp = aggregate.load(root, truth)
    frame = table.comparison(exp, truth, random_ns=(10,))
    pt = frame[(frame["kind"] == "measured") & (frame["criterion"] == CRIT)].set_index("label")
    assert sorted(pt.index) == ["darts [C=4] / ostr", "darts [C=8] / ostr"]
    assert (pt["seeds"] == 1).all() and pt["cifar10_test:std"].isna().all()
    conv = truth.lookup(CONV, ["cifar10_test"])["cifar10_test"]
    assert pt.loc["darts [C=8] / ostr", "cifar10_test"] == conv
    prov = table.provenance(exp, truth)
    assert prov["not_pooled"] == ["darts: darts [C=4], darts [C=8]"]
    assert "smoke changed by C=8 (3 epochs, C=8, N=1, 512/512 images)" in prov["profiles"]
    md = table.to_markdown(frame, prov)
    assert "never pooled: darts: darts [C=4], darts [C=8]" in md
    summary = tau.summary(exp, n_boot=100)
    assert {"darts [C=4] / ostr", "darts [C=8] / ostr"} <= set(summary["line"])
    assert (summary["seeds"] == 1).all()


def test_selection_options_and_validation_sizes_are_separate_lines(tmp_path, truth):
    root = tmp_path / "results" / "options"
    for seed, size in ((0, 64), (1, 256)):
        variant = "exact" if seed else "taylor"
        eoinas = (GOOD, {"valid_size": size, "options": {"samples": 8}})
        ostr = (GOOD, {"options": {"variant": variant}})
        make_run(root, seed, truth, selections={"eoinas": eoinas, "ostr": ostr})
    lines = set(aggregate.load(root, truth).selections["line"])
    assert {"darts / eoinas [valid_size=64]", "darts / eoinas [valid_size=256]",
            "darts / ostr [variant=taylor]", "darts / ostr [variant=exact]"} <= lines


def test_changed_profile_is_named_as_changed(tmp_path, truth):
    root = tmp_path / "results" / "changed"
    make_run(root, 0, truth, profile="paper", total=40, overrides=("C=8", "N=1"))
    exp = aggregate.load(root, truth)
    assert exp.runs[0].procedure == ("paper changed by C=8, N=1, epochs=40 "
                                     "(40 epochs, C=8, N=1, 25000/25000 images)")
    frame = table.comparison(exp, truth, random_ns=(10,))
    md = table.to_markdown(frame, table.provenance(exp, truth))
    assert "profile paper changed by C=8, N=1, epochs=40" in md
    # a changed paper run is not NB201's procedure: DARTS-V1's published row stays apart
    v1 = frame[frame["label"] == "DARTS-V1 (magnitude)"].iloc[0]
    assert v1["block"] == table.OTHER


def test_published_rows_stand_beside_matching_procedures_only(tmp_path, truth):
    """A synthetic experiment that would mix procedures: the paper profile as defined (DARTS-V1's
    procedure), DARTS-PT's projection on the darts-pt profile, and a smoke run."""
    root = tmp_path / "results" / "published"
    options = {"options": dict(published.PT_OPTIONS, masks_together=4), "valid_size": 0}
    make_run(root, 0, truth, profile="paper", total=50, name="paper", selections={"magnitude": (SKIP, {})})
    make_run(root, 0, truth, profile="darts-pt", total=100, name="pt",
             selections={"darts-pt-proj": (GOOD, options)})
    changed = {"darts-pt-proj": (GOOD, {"options": {**options["options"], "proj_intv": 1}, "valid_size": 0})}
    make_run(root, 1, truth, profile="darts-pt", total=100, name="pt-changed", selections=changed)
    make_run(root, 0, truth, name="smoke")
    exp = aggregate.load(root, truth)
    frame = table.comparison(exp, truth, random_ns=(10,))
    main = frame[frame["block"] == table.MAIN].reset_index(drop=True)
    v1 = main.index[main["label"] == "DARTS-V1 (magnitude)"][0]
    assert main.loc[v1 - 1, "kind"] == "measured" and main.loc[v1 - 1, "criterion"] == "search"  # own cell
    assert main.loc[v1 - 1, "search_text"].startswith("profile paper (50 epochs, C=16, N=5, 25000/25000 "
                                                      "images)")
    assert main.loc[v1, "procedure"] == main.loc[v1 - 1, "procedure"]
    pt = main.index[main["label"] == "DARTS + PT"][0]
    assert main.loc[pt - 1, "criterion"] == "darts-pt-proj" and main.loc[pt - 1, "selection"].endswith(
        "validation the whole alpha half")
    assert "proj_intv=5" in main.loc[pt - 1, "selection"]
    other = frame[frame["block"] == table.OTHER]
    assert {"DARTS-V2 (magnitude)", "GDAS", "DARTS + PT (fix alpha)"} <= set(other["label"])
    assert not {"DARTS-V1 (magnitude)", "DARTS + PT"} & set(other["label"])
    md = table.to_markdown(frame, table.provenance(exp, truth))
    assert "Published, other procedure" in md and "88.21 and 88.18 (seeds 0, 1)" in md
    v2 = other[other["label"] == "DARTS-V2 (magnitude)"].iloc[0]["procedure"]
    assert f"- {v2}: NB201's DARTS search: paper profile" in md and f"published, other procedure: {v2}" in md


def test_nap_rows_say_none_is_no_candidate_and_count_edges(tmp_path, truth):
    root = tmp_path / "results" / "nap"
    for seed in (0, 1):
        path = make_run(root, seed, truth, method="nap", selections={})
        scores = scores_for(GOOD, seed)
        scores[:, 0] = np.nan  # 'none' is not a candidate
        scores[0, [1, 2, 4]] = np.nan  # edge 0 pruned to one op: no per-edge tau
        append_jsonl(path / "selections.jsonl",
                     {"epoch": 3, "criterion": "ostr", "scores": to_jsonable(scores), "valid_size": 64})
    exp = aggregate.load(root, truth)
    summary = tau.summary(exp, n_boot=100)
    row = summary[(summary["criterion"] == "ostr") & (summary["protocol"] == "2-op-marginal")].iloc[0]
    assert row["edges"] == "5" and row["ops"] == "1-4"
    assert "per-edge correlations run over 4 ops" in row["notes"]
    arch = summary[(summary["criterion"] == "ostr") & (summary["protocol"] == "1-arch")].iloc[0]
    assert arch["ops"] == "1-4" and arch["edges"] == ""  # protocol 1 ranks the cells of the scored ops only
    md = tau.summary_markdown(summary)
    assert "| nap / ostr (note a) | 2-op-marginal | mean | cifar10_test | 2 | 5 | 1-4 |" in md
    assert "note a: 'none' is not a candidate" in md
    frame = table.comparison(exp, truth, random_ns=(10,))
    assert "none' is not a candidate" in frame[frame["criterion"] == "ostr"].iloc[0]["note"]


def test_tau_summary_bootstrap_equals_hand_computation(experiment, truth):
    exp = aggregate.load(experiment, truth)
    summary = tau.summary(exp, n_boot=500, seed=3)
    row = summary[(summary["criterion"] == CRIT) & (summary["protocol"] == "1-arch")
                  & (summary["subset"] == "all") & (summary["metric"] == "cifar10_test")].iloc[0]
    values = np.array([arch_tau(CRIT_CELL[s], s * 10 + 1, truth) for s in (0, 1, 2)])
    rng = np.random.default_rng(3)
    means = values[rng.integers(0, 3, size=(500, 3))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert row["seeds"] == 3 and row["tau"] == pytest.approx(values.mean())
    assert row["tau_low"] == pytest.approx(low) and row["tau_high"] == pytest.approx(high)


def test_paired_comparison_by_hand(experiment, truth):
    exp = aggregate.load(experiment, truth)
    pairs = tau.paired(exp, over="seeds", n_boot=200)
    row = pairs[(pairs["a"] == "darts / magnitude") & (pairs["b"] == "darts / ostr")
                & (pairs["protocol"] == "1-arch") & (pairs["subset"] == "all")
                & (pairs["metric"] == "cifar10_test")].iloc[0]
    d = np.array([arch_tau(SKIP, s * 10, truth) - arch_tau(CRIT_CELL[s], s * 10 + 1, truth)
                  for s in (0, 1, 2)])
    expected = stats.paired_comparison(d, np.zeros(3), n_boot=200)
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(d.mean())
    assert row["p_value"] == pytest.approx(expected["p_value"])
    over_epochs = tau.paired(exp, over="epochs", n_boot=200)
    pair = (over_epochs["a"] == "darts / magnitude") & (over_epochs["b"] == "darts / ostr")
    row = over_epochs[pair].iloc[0]
    assert row["n"] == 9  # 3 seeds x 3 epochs, the unfinished run left out


def test_paired_comparison_pure():
    out = stats.paired_comparison([1.0, 2.0, 3.0, np.nan], [0.0, 1.0, 2.5, 1.0])
    assert out["n"] == 3 and out["mean_diff"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["p_value"] == pytest.approx(2 / 8)
    assert stats.paired_comparison([1.0], [0.0])["p_value"] == 1.0


def test_expected_best_of_n_exact_small_case():
    # best of 2 of {1, 2, 3, 4}: the 6 pairs have maxima 2, 3, 4, 3, 4, 4
    assert reference.expected_best_of_n([1, 2, 3, 4], 2) == pytest.approx(20 / 6)
    # selecting by another column: the target of the best selector
    assert reference.expected_best_of_n([10, 0, 5], 3, select_by=[1, 2, 3]) == pytest.approx(5)
    assert reference.expected_best_of_n([1, 2, 3], 1) == pytest.approx(2)


def test_expected_best_of_n_matches_monte_carlo(truth):
    target = truth.metric("cifar10_test")
    select = truth.metric("cifar10-valid_valid")
    exact = reference.expected_best_of_n(target, 10, select)
    rng = np.random.default_rng(0)
    ok = np.flatnonzero(np.isfinite(target) & np.isfinite(select))
    draws = np.array([ok[rng.choice(ok.size, 10, replace=False)] for _ in range(20000)])
    picked = target[draws[np.arange(len(draws)), np.argmax(select[draws], axis=1)]]
    assert abs(picked.mean() - exact) < 4 * picked.std() / np.sqrt(len(picked))


def test_hessian_eigenvalues_drawn_only_when_present(tmp_path, truth):
    root = tmp_path / "results" / "hessian"
    path = make_run(root, 0, truth)
    append_jsonl(path / "selections.jsonl",
                 {"epoch": 3, "criterion": "_hessian", "hessian": {"eigenvalue": 0.75}})
    exp = aggregate.load(root, truth)
    assert exp.epochs.set_index("epoch")["hessian_eigenvalue"].iloc[-1] == 0.75
    assert "_hessian" not in set(exp.selections["criterion"])
    files = build.run("curves", str(root), out=str(tmp_path / "with"))
    assert files["collapse-vs-epoch.png"].stat().st_size > 200
    assert (exp.epochs["hessian_eigenvalue"].isna().sum() == 2) and curves.has_hessian(exp)
    plain = tmp_path / "results" / "plain"
    make_run(plain, 0, truth)
    assert not curves.has_hessian(aggregate.load(plain, truth))  # build.write_curves draws no collapse figure


def test_curves_have_a_row_of_panels_per_net_and_a_legend_below(experiment, truth):
    """Accuracy curves: one row per net, one column per data set; each panel's lines are that net's
    criteria (labels without the net), drawn at the mean over seeds; a criterion keeps its look on
    every row; the legend lies below the lowest panel."""
    import matplotlib.pyplot as plt

    make_run(experiment, 0, truth, method="nap", selections={CRIT: (MIXED, {"valid_size": 64})})
    exp = aggregate.load(experiment, truth)
    fig = curves.accuracy_figure(exp, truth)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2 * 3
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "darts: CIFAR-10 test" and titles[3].startswith("nap: ")
    drawn = [{ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
             for ax in axes]
    assert set(drawn[0]) == {"own cell", "magnitude", CRIT, "optimum", "all-skip cell"}
    assert set(drawn[3]) == {"own cell", CRIT, "optimum", "all-skip cell"}
    mean, _ = crit_mean_std(truth)
    xs, ys = drawn[0][CRIT].get_data()
    assert list(xs) == [1, 2, 3] and ys[-1] == pytest.approx(mean)
    mixed = truth.lookup(MIXED, ["cifar10_test"])["cifar10_test"]
    assert drawn[3][CRIT].get_ydata()[-1] == pytest.approx(mixed)
    assert drawn[0][CRIT].get_color() == drawn[3][CRIT].get_color()
    assert drawn[0]["magnitude"].get_color() != drawn[0][CRIT].get_color()
    fig.canvas.draw()
    legend = fig.legends[0].get_window_extent()
    assert legend.y1 <= min(ax.get_tightbbox().y0 for ax in axes)
    plt.close(fig)
    from bench.report import style

    fig, axes = style.grid(1, 1)  # a legend taller than its panel still goes below it
    for i in range(40):
        axes[0][0].plot([0, 1], [i, i], label=f"line {i}", **style.line_style(i))
    style.legend_below(fig, axes[0])
    fig.canvas.draw()
    assert fig.legends[0].get_window_extent().y1 <= axes[0][0].get_tightbbox().y0
    plt.close(fig)


def test_report_all_writes_every_file(experiment, truth, tmp_path):
    """The tables hold the numbers computed here by hand; the figures are drawn images."""
    from matplotlib.image import imread

    files = build.run("all", str(experiment), out=str(tmp_path / "out"), random_ns=(10,))
    for name in ("table.md", "table.tex", "table.csv", "tau.md", "tau.csv", "paired.md", "index.md",
                 "accuracy-vs-epoch.pdf", "accuracy-vs-epoch.png", "diagnostics-vs-epoch.png",
                 "tau-vs-epoch.png", "weights-darts.png"):
        assert files[name].is_file(), name
    for name in [n for n in files if n.endswith(".png")]:
        pixels = imread(files[name])
        colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
        assert min(pixels.shape[:2]) > 100 and len(colours) > 2, name
    assert files["accuracy-vs-epoch.pdf"].read_bytes().startswith(b"%PDF")
    mean, std = crit_mean_std(truth)
    rows = pd.read_csv(files["table.csv"], comment="#").set_index("label")
    assert rows.loc["darts / ostr", "cifar10_test"] == pytest.approx(mean, abs=1e-4)
    assert rows.loc["darts / ostr", "cifar10_test:std"] == pytest.approx(std, abs=1e-4)
    taus = pd.read_csv(files["tau.csv"])
    row = taus[(taus["line"] == "darts / ostr") & (taus["protocol"] == "1-arch")
               & (taus["subset"] == "all") & (taus["metric"] == "cifar10_test")]
    expected = np.mean([arch_tau(CRIT_CELL[s], s * 10 + 1, truth) for s in (0, 1, 2)])
    assert row["tau"].tolist() == [pytest.approx(expected, abs=1e-5)]
    index = files["index.md"].read_text()
    assert "![accuracy vs epoch](accuracy-vs-epoch.png)" in index
    assert "| darts / ostr | measured | S1 |" in index and f"{mean:.2f} ± {std:.2f}" in index


def test_report_cli(experiment, truth, capsys):
    assert main(["report", "table", str(experiment), "--random-n", "10"]) == 0
    assert "darts / ostr" in capsys.readouterr().out
    mean, std = crit_mean_std(truth)
    assert f"{mean:.2f} $\\pm$ {std:.2f}" in (experiment / "report" / "table.tex").read_text()
    assert main(["report", "table", "no-such-experiment"]) == 2
    assert "No experiment folder" in capsys.readouterr().err
    assert main(["report", "table", str(experiment), "--random-n", "0"]) == 2
