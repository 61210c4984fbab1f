"""Reports on a small synthetic results folder with known numbers (no training)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import config, space, stats
from bench.atomic import append_jsonl, write_json
from bench.cli import main
from bench.errors import UserError
from bench.report import aggregate, build, reference, table, tau

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SKIP = reference.ALL_SKIP
# final-epoch CIFAR-10 test accuracy of darts-pt's cell per seed, and the tau of two criteria per seed
PT_ACC = {0: 93.0, 1: 94.0, 2: 95.5}
TAU = {"magnitude": {0: 0.10, 1: 0.05, 2: 0.20}, "darts-pt": {0: 0.40, 1: 0.45, 2: 0.35}}


def _rank(tau_value: float) -> list[dict]:
    return [{"protocol": "1-arch", "subset": "all", "metric": "cifar10_test", "kendall_tau": tau_value,
             "spearman": tau_value * 1.4, "n": 15625}]


def make_run(root: Path, seed: int, truth, epochs_done: int = 3, total: int = 3, sha: str | None = None,
             method: str = "darts") -> Path:
    cfg = config.resolve("smoke", [f"epochs={total}", f"method={method}"])
    path = root / f"{method}-smoke-s{seed}-synthetic"
    write_json(path / "config.json", {"config": cfg.to_dict(), "seed": seed, "profile": "smoke",
                                      "benchmark": {"source": truth.source, "sha256": sha or truth.sha256},
                                      "commit": "synthetic"})
    for epoch in range(1, epochs_done + 1):
        cell = GOOD if epoch == 1 else SKIP
        weights = np.full((6, 5), 0.2)
        weights[:, 1] += 0.02 * epoch
        append_jsonl(path / "epochs.jsonl", {
            "epoch": epoch, "cell": cell, "accuracies": truth.lookup(cell, ["cifar10_test"]),
            "parameter_free_ops": space.count_parameter_free(space.parse(cell)), "valid_acc": 40.0 + 10 * epoch + seed,
            "seconds": 10.0, "weights": (weights / weights.sum(1, keepdims=True)).tolist(),
            "tau_arch": {"kendall_tau": TAU["magnitude"].get(seed, 0.0), "spearman": 0.0, "metric": "cifar10_test"}})
        for criterion in ("magnitude", "darts-pt"):
            acc = PT_ACC.get(seed, 99.0) if criterion == "darts-pt" else 54.3
            append_jsonl(path / "selections.jsonl", {
                "epoch": epoch, "criterion": criterion, "cell": GOOD if criterion == "darts-pt" else SKIP,
                "accuracies": {"cifar10_test": acc}, "parameter_free_ops": 1 if criterion == "darts-pt" else 6,
                "rank": _rank(TAU[criterion].get(seed, 0.9)), "cost": {"seconds": 2.0, "epoch_equivalents": 0.2}})
    if epochs_done == total:
        write_json(path / "done", {"epochs": total})
    return path


@pytest.fixture()
def experiment(tmp_path, truth):
    root = tmp_path / "results" / "synthetic"
    for seed in PT_ACC:
        make_run(root, seed, truth)
    make_run(root, 7, truth, epochs_done=2, total=3)  # unfinished: must be left out
    return root


def test_aggregate_frames_and_incomplete_runs(experiment, truth):
    exp = aggregate.load(experiment, truth)
    assert {r.state for r in exp.runs} == {"done", "incomplete"}
    assert [r.run for r in exp.incomplete_runs] == ["darts-smoke-s7-synthetic"]
    sel = exp.selections
    # 3 epochs x 3 criteria (search + 2) x 3 seeds, plus 2 epochs x 3 of the unfinished run
    assert len(sel) == 27 + 6
    final = aggregate.at_final_epoch(aggregate.complete(sel))
    assert sorted(final["seed"].unique()) == [0, 1, 2] and (final["epoch"] == 3).all()
    assert set(final["criterion"]) == {"search", "magnitude", "darts-pt"}


def test_fix_alpha_own_cell_is_the_projection(tmp_path, truth):
    """DARTS-fix-alpha's alpha never trains: its own cell is darts-pt-proj's, not argmax alpha."""
    root = tmp_path / "results" / "fix"
    path = make_run(root, 0, truth, method="darts-fix-alpha")
    append_jsonl(path / "selections.jsonl", {"epoch": 3, "criterion": "darts-pt-proj", "cell": GOOD,
                                             "accuracies": {"cifar10_test": 93.5}, "rank": _rank(0.3)})
    sel = aggregate.load(root, truth).selections
    own = sel[sel["criterion"] == aggregate.SEARCH]
    assert own["epoch"].tolist() == [3] and own["cell"].tolist() == [GOOD]
    assert own["acc:cifar10_test"].tolist() == [93.5]
    ranks = aggregate.load(root, truth).ranks
    assert aggregate.SEARCH not in set(ranks["criterion"])


def test_comparison_table_mean_std_and_provenance(experiment, truth):
    exp = aggregate.load(experiment, truth)
    frame = table.comparison(exp, truth, random_ns=(10,))
    pt = frame[(frame["kind"] == "measured") & (frame["criterion"] == "darts-pt")].iloc[0]
    values = np.array(list(PT_ACC.values()))
    mean = values.sum() / 3
    std = np.sqrt(((values - mean) ** 2).sum() / 2)
    assert pt["seeds"] == 3
    assert pt["cifar10_test"] == pytest.approx(mean) and pt["cifar10_test:std"] == pytest.approx(std)
    kinds = frame.groupby("kind").size()
    assert kinds["published"] >= 5 and kinds["reference"] == 3
    optimum = frame[frame["label"].str.startswith("optimum")].iloc[0]
    assert optimum["cifar10_test"] == pytest.approx(float(np.nanmax(truth.metric("cifar10_test"))))
    prov = table.provenance(exp, truth)
    assert prov["seeds"] == [0, 1, 2] and prov["left_out"][0].startswith("darts-smoke-s7-synthetic (incomplete")
    md = table.to_markdown(frame, prov)
    assert f"{mean:.2f} ± {std:.2f}" in md and "left out (not finished)" in md and truth.sha256 in md
    assert "[NB201 Table 5]" in md and "54.30 ± 0.00" in md
    tex = table.to_latex(frame, prov)
    assert "\\toprule" in tex and "\\bottomrule" in tex and f"{mean:.2f} $\\pm$ {std:.2f}" in tex
    csv = table.to_csv(frame, prov)
    assert csv.splitlines()[0].startswith("kind,label") and "# benchmark" in csv


def test_one_seed_shows_no_spread(tmp_path, truth):
    root = tmp_path / "results" / "one"
    make_run(root, 0, truth)
    frame = table.comparison(aggregate.load(root, truth), truth, random_ns=(10,))
    pt = frame[frame["criterion"] == "darts-pt"].iloc[0]
    assert pt["seeds"] == 1 and np.isnan(pt["cifar10_test:std"])


def test_tau_summary_bootstrap_equals_hand_computation(experiment, truth):
    exp = aggregate.load(experiment, truth)
    summary = tau.summary(exp, n_boot=500, seed=3)
    row = summary[(summary["criterion"] == "darts-pt") & (summary["protocol"] == "1-arch")].iloc[0]
    values = np.array(list(TAU["darts-pt"].values()))
    rng = np.random.default_rng(3)
    means = values[rng.integers(0, 3, size=(500, 3))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    assert row["seeds"] == 3 and row["tau"] == pytest.approx(values.mean())
    assert row["tau_low"] == pytest.approx(low) and row["tau_high"] == pytest.approx(high)


def test_paired_comparison_sign_flip_by_hand(experiment, truth):
    exp = aggregate.load(experiment, truth)
    pairs = tau.paired(exp, over="seeds", n_boot=200)
    row = pairs[(pairs["a"] == "darts-pt") & (pairs["b"] == "magnitude")].iloc[0]
    d = np.array([TAU["darts-pt"][s] - TAU["magnitude"][s] for s in (0, 1, 2)])  # 0.30, 0.40, 0.15
    assert row["n"] == 3 and row["mean_diff"] == pytest.approx(d.mean())
    # all 8 sign patterns: only +++ and --- reach |mean| >= 0.2833 -> p = 2/8
    assert row["p_value"] == pytest.approx(0.25)
    over_epochs = tau.paired(exp, over="epochs", n_boot=200)
    row = over_epochs[(over_epochs["a"] == "darts-pt") & (over_epochs["b"] == "magnitude")].iloc[0]
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


def test_changed_benchmark_is_refused(tmp_path, truth):
    root = tmp_path / "results" / "stale"
    make_run(root, 0, truth, sha="0" * 64)
    with pytest.raises(UserError, match="another benchmark table"):
        aggregate.load(root, truth)


def test_report_all_writes_every_file(experiment, truth, tmp_path):
    files = build.run("all", str(experiment), out=str(tmp_path / "out"), random_ns=(10,))
    for name in ("table.md", "table.tex", "table.csv", "tau.md", "tau.csv", "paired.md", "index.md",
                 "accuracy-vs-epoch.png", "accuracy-vs-epoch.pdf", "diagnostics-vs-epoch.png",
                 "tau-vs-epoch.png", "weights-darts.png"):
        assert files[name].exists() and files[name].stat().st_size > 200, name
    index = files["index.md"].read_text()
    assert "![accuracy vs epoch](accuracy-vs-epoch.png)" in index and "| darts / darts-pt | measured | 3 |" in index
    assert pd.read_csv(files["tau.csv"]).shape[0] >= 3


def test_report_cli(experiment, capsys):
    assert main(["report", "table", str(experiment), "--random-n", "10"]) == 0
    assert "darts / darts-pt" in capsys.readouterr().out
    assert (experiment / "report" / "table.tex").exists()
    assert main(["report", "table", "no-such-experiment"]) == 2
    assert "No experiment folder" in capsys.readouterr().err
    assert main(["report", "table", str(experiment), "--random-n", "0"]) == 2
