"""select: verified checkpoints, records keyed by everything that changes them, logs that lose
nothing, and scoring at read time (``bench.score``)."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import torch

import criteria
from bench import score
from bench.cli import main
from bench.errors import UserError
from bench.nb201 import space
from bench.runs import experiment, select
from bench.runs import records as records_mod
from bench.runs.checkpoints import build_supernet, load_supernet
from bench.runs.runstore import Run
from bench.search import config

SMALL = dict(epochs=2, weight_size=64, alpha_size=64, batch_size=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cifar_root):
    """Two tiny smoke runs A (seed 0) and B (seed 1); tests copy them before changing anything."""
    root = tmp_path_factory.mktemp("runs")
    cfg = config.resolve("smoke").replace(**SMALL)
    made = []
    for seed in (0, 1):
        run = Run(root / f"s{seed}")
        experiment.search("smoke", cfg, seed, data_dir=cifar_root, progress=False, run=run)
        made.append(run)
    return made


@pytest.fixture
def run_a(runs, tmp_path):
    target = tmp_path / "a"
    shutil.copytree(runs[0].path, target)
    return Run(target)


def _select(run, *extra):
    return main(["select", str(run.path), "--quiet", "--valid-size", "32", *extra])


def test_a_swapped_checkpoint_is_refused(run_a, runs, capsys):
    shutil.copy(runs[1].checkpoint_file(2), run_a.checkpoint_file(2))
    assert _select(run_a, "--criteria", "magnitude", "--epochs", "2") == 2
    assert "SHA-256 differs" in capsys.readouterr().err
    assert not (run_a.path / "selections.jsonl").exists()


def test_a_foreign_checkpoint_with_a_forged_checksum_is_refused(run_a, runs, capsys):
    """The checksum in epochs.jsonl edited to match B's file: the seed inside still gives it away."""
    shutil.copy(runs[1].checkpoint_file(2), run_a.checkpoint_file(2))
    from bench.atomic import rewrite_jsonl, sha256_file

    records = run_a.epochs()
    records[-1]["checkpoint"]["sha256"] = sha256_file(run_a.checkpoint_file(2))
    rewrite_jsonl(run_a.epochs_file, records)
    assert _select(run_a, "--criteria", "magnitude", "--epochs", "2") == 2
    assert "belongs to another run: seed 1 (run: 0)" in capsys.readouterr().err


def test_a_checkpoint_path_outside_the_run_folder_is_never_followed(run_a, tmp_path, capsys):
    from bench.atomic import rewrite_jsonl, sha256_file

    outside = tmp_path / "x.pt"
    shutil.copy(run_a.checkpoint_file(2), outside)
    records = run_a.epochs()
    records[-1]["checkpoint"] = {"file": "../x.pt", "sha256": sha256_file(outside)}
    rewrite_jsonl(run_a.epochs_file, records)
    assert _select(run_a, "--criteria", "magnitude", "--epochs", "2") == 2
    assert "outside the run folder" in capsys.readouterr().err


def test_a_pickle_that_runs_code_is_not_unpickled(run_a, tmp_path, capsys):
    """Checkpoints load with weights_only: a crafted file's __reduce__ never runs."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = run_a.checkpoint_file(2)
    with open(path, "wb") as handle:
        pickle.dump({"model": Payload(), "arch_state": {}}, handle)
    from bench.runs.runstore import load_checkpoint

    with pytest.raises(UserError, match="could not be read"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_record_is_keyed_by_options_none_rule_and_validation_size(run_a, capsys):
    assert _select(run_a, "--criteria", "magnitude,random,random,ostr", "--epochs", "2,2") == 0
    assert "3 new selection record(s)" in capsys.readouterr().out  # duplicates computed once
    assert _select(run_a, "--criteria", "magnitude", "--epochs", "2", "--exclude-none") == 0
    assert "1 new selection record(s)" in capsys.readouterr().out
    assert _select(run_a, "--criteria", "ostr", "--epochs", "2", "--option", "ostr.variant=exact") == 0
    assert "1 new selection record(s)" in capsys.readouterr().out
    assert main(["select", str(run_a.path), "--quiet", "--valid-size", "48", "--criteria", "ostr,magnitude",
                 "--epochs", "2"]) == 0
    assert "1 new selection record(s)" in capsys.readouterr().out  # magnitude reads no data: same record
    records = run_a.selections()
    ostr = [r for r in records if r["criterion"] == "ostr"]
    assert sorted((r["options"]["variant"], r["valid_size"]) for r in ostr) == [
        ("exact", 32), ("taylor", 32), ("taylor", 48)]
    magnitude = [r for r in records if r["criterion"] == "magnitude"]
    assert sorted(r["allow_none"] for r in magnitude) == [False, True]
    assert len({r["key"] for r in records}) == len(records)
    assert _select(run_a, "--criteria", "magnitude,random,ostr", "--epochs", "2") == 0
    assert "0 new selection record(s)" in capsys.readouterr().out


def test_records_hold_what_the_criterion_produced_and_are_scored_at_read_time(run_a, truth, capsys):
    assert _select(run_a, "--criteria", "magnitude,ostr", "--epochs", "1,2", "--supernet-tau", "6") == 0
    records = run_a.selections()
    for r in records:
        assert not {"accuracies", "rank", "cell_index", "parameter_free_ops", "skip_connections"} & set(r)
    scored = records_mod.selections(run_a, truth)
    one = next(r for r in scored if r["criterion"] == "ostr" and r["epoch"] == 2)
    cell = space.parse(one["cell"])
    assert one["accuracies"]["cifar10_test"] == truth.lookup(cell, ["cifar10_test"])["cifar10_test"]
    assert one["parameter_free_ops"] == space.count_parameter_free(cell)
    assert one["skip_connections"] == space.count_skip_connections(cell)
    # every record names the code that computed it (a run resumed by other code says so)
    from bench.runs.runstore import git_commit
    assert {r["commit"] for r in records} == {git_commit()} == {e["commit"] for e in run_a.epochs()}
    assert json.loads((run_a.path / "done").read_text())["commit"] == git_commit() != ""
    assert {r["protocol"] for r in one["rank"]} >= {"1-arch", "2-op-marginal", "3-op-conditional"}
    supernet = next(r for r in scored if r["criterion"] == records_mod.SUPERNET and r["epoch"] == 2)
    assert len(supernet["measured"]) == 6 and supernet["rank"][0]["n"] == 6
    # the magnitude selection equals the search's own epoch record, scored the same way
    epoch = next(r for r in run_a.epochs() if r["epoch"] == 2)
    magnitude = next(r for r in scored if r["criterion"] == "magnitude" and r["epoch"] == 2)
    from_epoch = score.score_epoch(epoch, truth)
    assert from_epoch["cell"] == magnitude["cell"]
    assert from_epoch["accuracies"] == magnitude["accuracies"]
    assert from_epoch["tau_arch"]["kendall_tau"] == next(
        r["kendall_tau"] for r in magnitude["rank"]
        if (r["protocol"], r["subset"], r["metric"]) == ("1-arch", "all", "cifar10_test"))


def test_records_of_the_earlier_format_score_to_their_stored_numbers(run_a, truth):
    """A record written when select still scored (accuracies and rank rows inside) loads and
    scores at read time to the numbers it holds."""
    net = load_supernet(run_a, 2, torch.device("cpu"))
    scores = criteria.compute("magnitude", net)
    cell = space.select_cell(scores)
    from bench import stats
    from bench.opscores import to_jsonable

    truths = {m: truth.metric(m) for m in ("cifar10_test", "cifar100_test", "ImageNet16-120_test")}
    old = {"epoch": 2, "criterion": "magnitude", "scores": to_jsonable(scores),
           "cell": space.to_string(cell), "cell_index": truth.benchmark_index(cell),
           "parameter_free_ops": space.count_parameter_free(cell),
           "accuracies": truth.lookup(cell, ["cifar10_test", "cifar100_test", "ImageNet16-120_test",
                                             "cifar10-valid_valid"]),
           "rank": stats.rank_report(scores, truths, derived=cell), "options": {}, "info": {},
           "allow_none": True, "valid_size": 2000}
    again = score.score_selection(json.loads(json.dumps(old)), truth)
    for key in ("cell", "cell_index", "parameter_free_ops", "accuracies"):
        assert again[key] == old[key], key
    assert json.dumps(again["rank"], sort_keys=True) == json.dumps(json.loads(json.dumps(old["rank"])),
                                                                   sort_keys=True)
    # magnitude reads no data: the validation size is no part of its key
    assert select.selection_key(old) == select.selection_key({**old, "valid_size": 64})


def test_a_run_searched_and_selected_without_any_table_is_scored_later(tmp_path, cifar_root, truth,
                                                                      table_path, monkeypatch, capsys):
    monkeypatch.delenv("BENCH_BENCHMARK", raising=False)
    monkeypatch.setenv("BENCH_SHARED_DATA", str(tmp_path / "nowhere"))
    args = ["search", "--profile", "smoke", "--quiet", "--data-dir", str(cifar_root), "--experiment", "bare"]
    for key, value in SMALL.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    assert "no benchmark table found" in capsys.readouterr().out
    run = Run(next((tmp_path / "results" / "bare").iterdir()))
    assert "benchmark" not in run.meta()
    assert _select(run, "--criteria", "magnitude", "--epochs", "last") == 0
    capsys.readouterr()
    assert main(["show", str(run.path), "--benchmark", str(table_path)]) == 0
    out = capsys.readouterr().out
    last = score.score_epoch(run.epochs()[-1], truth)
    assert f"{last['accuracies']['cifar10_test']:6.2f}" in out.splitlines()[-1]


def test_epoch_zero_is_the_initialisation_recreated_from_the_seed(run_a):
    cfg = run_a.config()
    net = load_supernet(run_a, 0, torch.device("cpu"))
    fresh = build_supernet(cfg, 0, torch.device("cpu"))
    for (name, a), (_, b) in zip(net.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(net.alpha, fresh.alpha)
    other = build_supernet(cfg, 1, torch.device("cpu"))
    assert not torch.equal(net.alpha, other.alpha)
    assert select.parse_epochs("0", [1, 2]) == [0]
    assert select.parse_epochs("all", [1, 2]) == [1, 2]  # 0 only when named


def test_criteria_score_a_copy_of_the_network_they_are_given(run_a, cifar_root):
    net = load_supernet(run_a, 2, torch.device("cpu"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    from bench import data

    d = data.load_search_data(cifar_root, torch.device("cpu"), 64, 64, split_seed=0)
    context = criteria.Context(data=d, seed=0, options={}, valid_size=64)
    # train-mode BN: it changes running statistics of the network it gets
    criteria.compute("darts-pt-oneshot", net, context)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_corrupt_log_line_stops_the_command_and_is_kept(run_a, capsys):
    text = run_a.epochs_file.read_text()
    first, rest = text.split("\n", 1)
    run_a.epochs_file.write_text(first[: len(first) // 2] + "\n" + rest)
    with pytest.raises(UserError, match="line 1 is corrupt"):
        run_a.epochs()
    assert main(["show", str(run_a.path)]) == 2
    assert "epochs.jsonl line 1 is corrupt" in capsys.readouterr().err
    assert run_a.epochs_file.read_text().startswith(first[: len(first) // 2] + "\n")  # never rewritten away


def test_only_a_partial_last_line_is_dropped(run_a):
    records = run_a.epochs()
    with open(run_a.epochs_file, "a") as handle:
        handle.write('{"epoch": 3, "trai')
    assert run_a.epochs() == records
    run_a.log_epoch({"epoch": 3})
    assert [r["epoch"] for r in run_a.epochs()] == [1, 2, 3]


def test_a_record_of_the_wrong_shape_names_file_and_line(run_a):
    with open(run_a.epochs_file, "a") as handle:
        handle.write("[1, 2]\n")
    with pytest.raises(UserError, match=r"epochs.jsonl line 3 is not a record"):
        run_a.epochs()


def test_protocol_four_needs_a_sample_of_two_cells_or_more(run_a):
    with pytest.raises(UserError, match="--supernet-tau"):
        select.apply(run_a, ["magnitude"], [2], supernet_tau=1, valid_size=32, progress=False)
    sample = select.supernet_sample(5)
    assert len(set(sample.tolist())) == 5 and list(sample) == sorted(sample)
    assert all(space.has_path(space.from_code(int(code))) for code in sample)  # cells with a path only
    assert np.array_equal(sample, select.supernet_sample(5))  # the same for every run
    assert not np.array_equal(sample, select.supernet_sample(5, seed=1))


def test_the_collapse_indicator_is_logged_by_select_and_by_search(run_a, tmp_path, cifar_root, capsys):
    assert _select(run_a, "--criteria", "magnitude", "--epochs", "2", "--hessian") == 0
    assert "_hessian" in capsys.readouterr().out
    record = next(r for r in run_a.selections() if r["criterion"] == records_mod.HESSIAN)
    assert record["valid_size"] == 32 and record["hessian"]["images"] == 32
    assert np.isfinite(record["hessian"]["eigenvalue"]) and record["hessian"]["hvps"] >= 1
    # the same checkpoint measured again in-process gives the same number (deterministic for a seed)
    from bench.data import load_search_data
    from bench.data import fixed_batches
    from bench.nets.hessian import alpha_hessian_eigenvalue

    net = load_supernet(run_a, 2, torch.device("cpu"))
    d = load_search_data(cifar_root, torch.device("cpu"), 64, 64, split_seed=0)
    again = alpha_hessian_eigenvalue(net, fixed_batches(d.alpha, 32), "train", seed=0)
    assert again["eigenvalue"] == pytest.approx(record["hessian"]["eigenvalue"], rel=1e-6)
    # during a search: every k-th epoch's record holds it; the training itself is unchanged
    cfg = config.resolve("smoke").replace(**SMALL)
    plain = experiment.search("smoke", cfg, 0, data_dir=cifar_root, progress=False,
                              run=Run(tmp_path / "plain"))
    measured = experiment.search("smoke", cfg.replace(hessian_every=1, hessian_images=32), 0,
                                 data_dir=cifar_root, progress=False, run=Run(tmp_path / "measured"))
    assert [r["alpha"] for r in plain.epochs()] == [r["alpha"] for r in measured.epochs()]
    assert all(np.isfinite(r["hessian"]["eigenvalue"]) for r in measured.epochs())
    assert "hessian" not in plain.epochs()[0]


def test_a_validation_subset_holds_exactly_the_images_asked_for(cifar_root):
    from bench.data import load_search_data
    from bench.data import fixed_batches

    d = load_search_data(cifar_root, torch.device("cpu"), 64, 300, split_seed=0)
    batches = fixed_batches(d.alpha, 100, 64)
    assert [len(y) for _, y in batches] == [64, 36]
    assert torch.equal(torch.cat([y for _, y in batches]), d.alpha.labels[:100])
    assert sum(len(y) for _, y in fixed_batches(d.alpha, None, 128)) == 300
