"""The bad-input table: every command answers malformed input with exit code 2 and a
message that names the input and the fix, never a Python traceback (``--debug`` shows it)."""
import subprocess
import sys

import pytest

from bench.cli import main
from conftest import truncated_cifar

GOOD = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
TINY = ["--set", "epochs=1", "--set", "weight_size=64", "--set", "alpha_size=64", "--set", "batch_size=32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, cifar_root):
    """Bad files of every kind, and one real tiny run to point select at."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty.json").write_text("")
    (root / "short.json").write_text("[[1, 2, 3]]")
    (root / "words.csv").write_text("a,b,c,d,e\n" * 6)
    (root / "scores.txt").write_text("1 2 3")
    (root / "nan.json").write_text("[" + ",".join(["[NaN, NaN, NaN, NaN, NaN]"] * 6) + "]")
    (root / "ok.json").write_text("[" + ",".join(["[0, 1, 2, 3, 4]"] * 6) + "]")
    (root / "empty.csv").write_text("")
    (root / "table.json").write_text("{}")
    (root / "nocell.csv").write_text("foo,cifar10_test\n1,2\n")
    (root / "bad.toml").write_text("experiment = \n")
    (root / "unknown.toml").write_text('experiment = "x"\nflavour = 1\n')
    (root / "seeds.toml").write_text('experiment = "x"\nseeds = ["a"]\n')
    (root / "method.toml").write_text('experiment = "x"\nprofile = "smoke"\nmethods = ["gdas"]\n')
    (root / "select.toml").write_text('experiment = "x"\n[select]\ncriteria = ["magnitude"]\nevery = 2\n')
    (root / "good.toml").write_text(f'experiment = "x"\nprofile = "smoke"\nresults = "{root}/sw"\n')
    (root / "not-a-run").mkdir()
    (root / "folder.toml").mkdir()
    (root / "a-file").write_text("x")
    binary = bytes(range(256)) * 4  # not UTF-8
    for name in ("binary.json", "binary.csv", "binary.toml"):
        (root / name).write_bytes(binary)
    (root / "huge-int.json").write_text(_matrix(str(10**400)))
    (root / "long-int.json").write_text(_matrix("7" * 5000))
    (root / "deep.json").write_text("[" * 100000 + "]" * 100000)
    truncated_cifar(cifar_root, root / "cut-cifar")
    for name, text in SPECS.items():
        text = text.format(root=root)
        if "[overrides]" in text:
            text = text.replace("[overrides]", "[overrides]" + _TINY_SPEC.split("[overrides]")[1].rstrip())
        elif "overrides" not in text:
            text += _TINY_SPEC
        (root / f"{name}.toml").write_text(text)
    import os

    os.environ["BENCH_RESULTS"] = str(root / "results")
    try:
        assert main(["search", "--profile", "smoke", "--experiment", "bad", "--quiet",
                     "--data-dir", str(cifar_root)] + TINY) == 0
    finally:
        del os.environ["BENCH_RESULTS"]
    run = next((root / "results" / "bad").iterdir())
    return {"root": root, "run": run, "data": cifar_root}


def _matrix(entry: str) -> str:
    return "[" + ",".join(["[" + ",".join([entry] * 5) + "]"] * 6) + "]"


_TINY_SPEC = "\n[overrides]\nepochs = 1\nweight_size = 64\nalpha_size = 64\nbatch_size = 32\n"
_HEAD = 'profile = "smoke"\nresults = "{root}/sw"\n'
_EXP = 'experiment = "x"\n' + _HEAD
SPECS = {  # sweep specs, each wrong in one way; every one must be refused before the first search
    "exp-up": 'experiment = "../../x"\n' + _HEAD,
    "exp-empty": 'experiment = ""\n' + _HEAD,
    "exp-dot": 'experiment = "."\n' + _HEAD,
    "exp-abs": 'experiment = "{root}/abs"\n' + _HEAD,
    "exp-slash": 'experiment = "a/b"\n' + _HEAD,
    "exp-int": "experiment = 5\n" + _HEAD,
    "seed-negative": _EXP + "seeds = [-1]\n",
    "seed-too-big": _EXP + "seeds = [4294967296]\n",
    "seed-repeated": _EXP + "seeds = [0, 0]\n",
    "seeds-empty": _EXP + "seeds = []\n",
    "profiles-empty": _EXP + "profiles = []\n",
    "methods-empty": _EXP + "methods = []\n",
    "methods-ints": _EXP + "methods = [5]\n",
    "profile-int": 'experiment = "x"\nprofile = 5\n',
    "profiles-unknown": _EXP + 'profiles = ["huge"]\n',
    "results-int": 'experiment = "x"\nresults = 5\n',
    "results-empty": 'experiment = "x"\nresults = ""\n', "overrides-int": _EXP + "overrides = 5\n#",
    "override-nan": _EXP + "[overrides]\na_lr = nan",
    "override-inf": _EXP + "[overrides]\nw_lr = inf",
    "override-classes": _EXP + "[overrides]\nnum_classes = 100",
    "override-method": _EXP + '[overrides]\nmethod = "nap"',
    "override-list": _EXP + "[overrides]\nC = [1]",
    "select-not-table": _EXP + "select = 5\n",
    "select-criterion": _EXP + '[select]\ncriteria = ["snip"]\n',
    "select-criteria-str": _EXP + '[select]\ncriteria = "magnitude"\n',
    "select-criteria-empty": _EXP + "[select]\ncriteria = []\n",
    "select-epochs": _EXP + '[select]\nepochs = "every:x"\n',
    "select-epoch-absent": _EXP + "[select]\nepochs = 7\n",
    "select-valid-negative": _EXP + "[select]\nvalid_size = -1\n",
    "select-valid-str": _EXP + '[select]\nvalid_size = "a"\n',
    "select-tau-negative": _EXP + "[select]\nsupernet_tau = -2\n",
    "select-tau-too-many": _EXP + "[select]\nsupernet_tau = 15625\n",
    "select-option-unknown": _EXP + '[select]\noptions = {{"darts-pt-oneshot.colour" = 1}}\n',
    "default-results": 'experiment = "x"\nprofile = "smoke"\n',  # good: writes under $BENCH_RESULTS
    "select-option-type": _EXP + '[select.options.eoinas]\nsamples = "x"\n',
    "select-options-int": _EXP + "[select]\noptions = 5\n",
}


# (id, argv with {root}/{run}/{data} placeholders, fragment the message must contain[, environment])
CASES = [
    # cell strings
    ("cell-empty", ["benchmark", "show", ""], "empty"),
    ("cell-too-few-nodes", ["benchmark", "show", "|nor_conv_3x3~0|"], "node group"),
    ("cell-unknown-op",
     ["benchmark", "show", GOOD.replace("nor_conv_1x1", "x").replace("skip_connect", "conv5x5")], "conv5x5"),
    ("cell-bad-input-index", ["benchmark", "show", GOOD.replace("skip_connect~0", "skip_connect~3")], "~3"),
    ("cell-whitespace", ["benchmark", "show", GOOD.replace("|+|", "| + |")], "Malformed"),
    ("cell-no-bars", ["benchmark", "show", "nor_conv_3x3~0"], "Malformed"),
    ("cell-index-out-of-range", ["benchmark", "show", "99999"], "99999"),
    ("cell-negative-index", ["benchmark", "show", "-5"], "Malformed"),
    # op-score files
    ("scores-missing", ["tau", "--scores", "{root}/nope.json"], "nope.json"),
    ("scores-empty", ["tau", "--scores", "{root}/empty.json"], "empty.json"),
    ("scores-wrong-shape", ["tau", "--scores", "{root}/short.json"], "6 x 5"),
    ("scores-not-numbers", ["tau", "--scores", "{root}/words.csv"], "words.csv"),
    ("scores-wrong-format", ["tau", "--scores", "{root}/scores.txt"], ".txt"),
    ("scores-all-nan", ["tau", "--scores", "{root}/nan.json"], "nan.json"),
    ("tau-unknown-metric", ["tau", "--scores", "{root}/ok.json", "--metrics", "cifar11_test"],
     "cifar11_test"),
    ("tau-negative-bootstrap", ["tau", "--scores", "{root}/ok.json", "--bootstrap", "-3"], "--bootstrap"),
    # benchmark sources
    ("benchmark-missing", ["benchmark", "show", GOOD, "--benchmark", "{root}/none.csv"], "none.csv"),
    ("benchmark-empty", ["benchmark", "show", GOOD, "--benchmark", "{root}/empty.csv"], "empty.csv"),
    ("benchmark-wrong-format", ["benchmark", "show", GOOD, "--benchmark", "{root}/table.json"], "table.json"),
    ("benchmark-no-arch-column", ["benchmark", "show", GOOD, "--benchmark", "{root}/nocell.csv"],
     "nocell.csv"),
    ("convert-bad-target", ["benchmark", "convert", "--from", "{root}/nocell.csv", "--to", "{root}/t.xlsx"],
     "xlsx"),
    ("convert-missing-source", ["benchmark", "convert", "--from", "{root}/gone.pth", "--to", "{root}/t.csv"],
     "gone.pth"),
    # search configuration
    ("search-unknown-profile", ["search", "--profile", "huge"], "huge"),
    ("search-unknown-method", ["search", "--method", "gdas"], "gdas"),
    ("search-wrong-type", ["search", "--set", "epochs=ten"], "ten"),
    ("search-zero-epochs", ["search", "--set", "epochs=0"], "epochs"),
    ("search-unknown-key", ["search", "--set", "flavour=1"], "flavour"),
    ("search-bad-precision", ["search", "--set", "precision=fp16"], "fp32, bf16"),
    ("search-no-equals", ["search", "--set", "epochs"], "key=value"),
    ("search-negative-lr", ["search", "--set", "w_lr=-1"], "w_lr"),
    ("search-zero-batch", ["search", "--set", "batch_size=0"], "batch_size"),
    ("search-unknown-relaxation", ["search", "--set", "relaxation=sparsemax"], "sparsemax"),
    ("search-missing-data-dir", ["search", "--data-dir", "{root}/no-cifar"] + TINY, "no-cifar"),
    ("search-unknown-device", ["search", "--device", "tpu"] + TINY, "tpu"),
    ("search-cuda-absent", ["search", "--device", "cuda"] + TINY, "CUDA"),
    # select
    ("select-missing-run", ["select", "{root}/no-run"], "no-run"),
    ("select-not-a-run", ["select", "{root}/not-a-run"], "config.json"),
    ("select-unknown-criterion", ["select", "{run}", "--criteria", "snip"], "snip"),
    ("select-bad-epochs", ["select", "{run}", "--epochs", "every:x"], "every:x"),
    ("select-absent-epoch", ["select", "{run}", "--epochs", "99"], "99"),
    ("select-option-format", ["select", "{run}", "--option", "darts-pt"], "darts-pt"),
    ("select-unknown-option", ["select", "{run}", "--criteria", "darts-pt-oneshot", "--option",
                               "darts-pt-oneshot.colour=1"],
     "colour"),
    ("select-bad-option-value", ["select", "{run}", "--criteria", "ostr", "--option", "ostr.variant=bogus",
                                 "--data-dir", "{data}", "--valid-size", "32"], "bogus"),
    ("select-negative-masks-together", ["select", "{run}", "--criteria", "darts-pt-oneshot", "--option",
                                        "darts-pt-oneshot.masks_together=-1"], "masks_together"),
    ("select-negative-valid-size", ["select", "{run}", "--valid-size", "-5"], "--valid-size"),
    # sweeps and status
    ("sweep-missing-spec", ["sweep", "{root}/none.toml"], "none.toml"),
    ("sweep-invalid-toml", ["sweep", "{root}/bad.toml"], "not valid TOML"),
    ("sweep-unknown-key", ["sweep", "{root}/unknown.toml"], "flavour"),
    ("sweep-seeds-not-ints", ["sweep", "{root}/seeds.toml"], "seeds"),
    ("sweep-unknown-method", ["sweep", "{root}/method.toml"], "gdas"),
    ("sweep-unknown-select-key", ["sweep", "{root}/select.toml"], "every"),
    ("sweep-zero-jobs", ["sweep", "{root}/good.toml", "--jobs", "0"], "--jobs"),
    ("sweep-unknown-backend", ["sweep", "{root}/good.toml", "--backend", "ray"], "ray"),
    ("sweep-dask-without-scheduler", ["sweep", "{root}/good.toml", "--backend", "dask"], "--scheduler"),
    ("status-missing", ["status", "{root}/nothing"], "nothing"),
    ("status-folder-without-runs", ["status", "{root}/not-a-run"], "no run folders"),
    ("status-spec-folder", ["status", "{root}/folder.toml"], "is a folder"),
    ("sweep-spec-binary", ["sweep", "{root}/binary.toml"], "UTF-8"),
    ("sweep-scheduler-malformed",
     ["sweep", "{root}/good.toml", "--backend", "dask", "--scheduler", "nonsense"],
     "nonsense"),
    ("sweep-threads-zero", ["sweep", "{root}/good.toml", "--threads", "0"], "--threads"),
    ("sweep-scheduler-without-dask", ["sweep", "{root}/good.toml", "--scheduler", "tcp://h:1"],
     "--backend dask"),
    ("sweep-missing-data-dir", ["sweep", "{root}/good.toml", "--data-dir", "{root}/no-cifar"], "no-cifar"),
    ("sweep-device-meta", ["sweep", "{root}/good.toml"], "meta", {"BENCH_DEVICE": "meta"}),
    ("sweep-results-a-file", ["sweep", "{root}/default-results.toml"],
     "a-file", {"BENCH_RESULTS": "{root}/a-file"}),
    ("sweep-results-under-a-file", ["sweep", "{root}/default-results.toml"], "a-file",
     {"BENCH_RESULTS": "{root}/a-file/r"}),
] + [(f"sweep-{name}", ["sweep", f"{{root}}/{name}.toml"], fragment) for name, fragment in [
    ("exp-up", "'../../x'"),
    ("exp-empty", "experiment ''"),
    ("exp-dot", "'.'"),
    ("exp-abs", "/abs"),
    ("exp-slash", "'a/b'"),
    ("exp-int", "experiment must be a string"),
    ("seed-negative", "-1"),
    ("seed-too-big", "4294967296"),
    ("seed-repeated", "repeats"),
    ("seeds-empty", "seeds is empty"),
    ("profiles-empty", "profiles is empty"),
    ("methods-empty", "methods is empty"),
    ("methods-ints", "strings"),
    ("profile-int", "profile must be a string"),
    ("profiles-unknown", "huge"),
    ("results-int", "results must be"),
    ("results-empty", "results must name"),
    ("overrides-int", "overrides must be a table"),
    ("override-nan", "a_lr"),
    ("override-inf", "w_lr"),
    ("override-classes", "num_classes"),
    ("override-method", "methods = [...]"),
    ("override-list", "C = [1]"),
    ("select-not-table", "select must be a table"),
    ("select-criterion", "snip"),
    ("select-criteria-str", "criteria must be a list"),
    ("select-criteria-empty", "criteria is empty"),
    ("select-epochs", "every:x"),
    ("select-epoch-absent", "[7]"),
    ("select-valid-negative", "valid_size"),
    ("select-valid-str", "valid_size must be an integer"),
    ("select-tau-negative", "supernet_tau"),
    ("select-tau-too-many", "15625"),
    ("select-option-unknown", "colour"),
    ("select-option-type", "samples"),
    ("select-options-int", "options must be a table")
]] + [
    # reports
    ("report-experiment-up", ["report", "table", "../../x"], "'../../x'"),
    ("report-experiment-empty", ["report", "table", ""], "experiment ''"),
    ("report-out-is-the-experiment", ["report", "table", "{run}/..", "--out", "{run}/.."],
     "input of this command"),
    ("report-out-is-a-run", ["report", "table", "{run}/..", "--out", "{run}"], "input of this command"),
    ("report-out-is-a-file", ["report", "table", "{run}/..", "--out", "{root}/a-file"], "is a file"),
    ("report-out-parent-missing", ["report", "table", "{run}/..", "--out", "{root}/none/sub/rep"],
     "does not exist"),
    ("report-unknown-experiment", ["report", "table", "no-such-exp"], "no-such-exp"),
    ("report-random-n-zero", ["report", "table", "x", "--random-n", "0"], "--random-n"),
    ("report-random-n-text", ["report", "table", "x", "--random-n", "ten"], "ten"),
    ("report-not-runs", ["report", "table", "{root}/not-a-run"], "no run folders"),
    # perf and show
    ("perf-unknown-size", ["perf", "--sizes", "giant"], "giant"),
    ("perf-zero-repeats", ["perf", "--repeats", "0"], "--repeats"),
    ("perf-unknown-method", ["perf", "--methods", "darts,gdas"], "gdas"),
    ("perf-zero-steps", ["perf", "--methods", "--steps", "0"], "--steps"),
    ("perf-epoch-and-methods", ["perf", "--epoch", "--methods"], "--epoch or --methods"),
    ("show-missing-run", ["show", "{root}/no-run"], "no-run"),
    # names never leave the results root
    ("search-experiment-up", ["search", "--experiment", "../../escaped"] + TINY, "'../../escaped'"),
    ("search-experiment-absolute", ["search", "--experiment", "{root}/abs"] + TINY, "/abs"),
    ("search-experiment-empty", ["search", "--experiment", ""] + TINY, "''"),
    ("search-experiment-dot", ["search", "--experiment", "."] + TINY, "'.'"),
    ("search-experiment-dotdot", ["search", "--experiment", ".."] + TINY, "'..'"),
    ("search-experiment-slash", ["search", "--experiment", "a/b"] + TINY, "'a/b'"),
    ("search-experiment-newline", ["search", "--experiment", "a\nb"] + TINY, "must be one folder name"),
    ("tau-out-is-the-scores", ["tau", "--scores", "{root}/ok.json", "--out", "{root}/ok.json"],
     "input of this"),
    ("tau-out-folder-missing", ["tau", "--scores", "{root}/ok.json", "--out", "{root}/new/sub/t.csv"],
     "does not exist"),
    ("tau-out-is-a-folder", ["tau", "--scores", "{root}/ok.json", "--out", "{root}/not-a-run"],
     "is a folder"),
    ("convert-to-is-the-source",
     ["benchmark", "convert", "--from", "{root}/ok.json", "--to", "{root}/ok.json"],
     "input of this"),
    ("convert-to-folder-missing",
     ["benchmark", "convert", "--from", "{root}/nocell.csv", "--to", "{root}/new/t.csv"],
     "does not exist"),
    # every value validated before any work
    ("search-seed-negative", ["search", "--seed", "-1"] + TINY, "-1"),
    ("search-seed-too-big", ["search", "--seed", str(2**32)] + TINY, "4294967296"),
    ("demo-seed-negative", ["demo", "--seed", "-1"], "-1"),
    ("search-num-classes", ["search", "--set", "num_classes=100"] + TINY, "num_classes"),
    ("search-w-lr-inf", ["search", "--set", "w_lr=inf"] + TINY, "w_lr"),
    ("search-a-lr-nan", ["search", "--set", "a_lr=nan"] + TINY, "a_lr"),
    ("search-grad-clip-inf", ["search", "--set", "grad_clip=-inf"] + TINY, "grad_clip"),
    ("search-tau-start-zero", ["search", "--method", "eoinas", "--set", "tau_start=0", "--set", "epochs=5"],
     "gumbel_temperature_start"),
    ("search-tau-decay-above-one",
     ["search", "--method", "eoinas", "--set", "gumbel_temperature_decay=2", "--set", "epochs=5"],
     "gumbel_temperature_decay"),
    ("search-method-twice", ["search", "--method", "eoinas", "--set", "method=nap"] + TINY, "disagree"),
    ("search-huge-integer", ["search", "--set", "epochs=" + "9" * 5000], "epochs"),
    ("search-restart-from-a-file", ["search", "--restart-from", "{root}/a-file"] + TINY, "a-file"),
    ("select-supernet-tau-negative", ["select", "{run}", "--supernet-tau", "-1"], "--supernet-tau"),
    ("select-supernet-tau-too-many", ["select", "{run}", "--supernet-tau", "15625"], "15625"),
    ("select-no-criteria", ["select", "{run}", "--criteria", ""], "--criteria"),
    ("select-only-commas", ["select", "{run}", "--criteria", ",,"], "--criteria"),
    ("select-run-is-a-file", ["select", "{root}/a-file"], "a-file"),
    # input files that are not text, and numbers out of range
    ("scores-binary-json", ["tau", "--scores", "{root}/binary.json"], "UTF-8"),
    ("scores-binary-csv", ["tau", "--scores", "{root}/binary.csv"], "UTF-8"),
    ("scores-a-folder", ["tau", "--scores", "{root}/not-a-run"], "not-a-run"),
    ("benchmark-binary", ["benchmark", "show", GOOD, "--benchmark", "{root}/binary.csv"], "binary.csv"),
    ("convert-binary-source", ["benchmark", "convert", "--from", "{root}/binary.csv", "--to", "{root}/o.csv"],
     "binary.csv"),
    ("cell-index-huge", ["benchmark", "show", "9" * 5000], "out of range"),
    ("cell-index-not-ascii", ["benchmark", "show", "\u0663"], "\u0663"),
    # devices, and the places results go
    ("device-env-meta", ["search"] + TINY, "BENCH_DEVICE 'meta'", {"BENCH_DEVICE": "meta"}),
    ("device-env-mps", ["search"] + TINY, "MPS", {"BENCH_DEVICE": "mps"}),
    ("device-flag-meta", ["search", "--device", "meta"] + TINY, "--device 'meta'"),
    ("device-flag-missing-gpu", ["search", "--device", "cuda:7"] + TINY, "cuda:7"),
    ("device-select-meta", ["select", "{run}", "--device", "meta"], "meta"),
    ("device-perf-meta", ["perf", "--methods", "darts", "--device", "meta"], "meta"),
    ("results-env-a-file", ["search"] + TINY, "a-file", {"BENCH_RESULTS": "{root}/a-file"}),
    ("results-env-under-a-file", ["search"] + TINY, "a-file", {"BENCH_RESULTS": "{root}/a-file/r"}),
    ("results-env-unwritable", ["search"] + TINY, "/proc", {"BENCH_RESULTS": "/proc/1/results"}),
    ("demo-results-a-file", ["demo"], "a-file", {"BENCH_RESULTS": "{root}/a-file"}),
    ("search-data-dir-a-file", ["search", "--data-dir", "{root}/a-file"] + TINY, "a-file"),
    ("search-data-env-a-file", ["search"] + TINY, "a-file", {"BENCH_DATA_DIR": "{root}/a-file"}),
    ("search-benchmark-missing", ["search", "--benchmark", "{root}/none.csv"] + TINY, "none.csv"),
]


def _tree(*folders) -> set[str]:
    """Every path under ``folders``, except the lock files that stay in run folders by design."""
    return {str(p) for folder in folders for p in folder.rglob("*") if not p.name.endswith(".lock")}


def _check_refusal(files, tmp_path, monkeypatch, capsys, argv, fragment, env=None):
    """Exit code 2, a last line ``error: ...`` holding ``fragment``, no traceback, and nothing
    written: no file or folder appears under the fixture's folder or this test's folder."""
    results = tmp_path / "a" / "b" / "results"  # so that ../../escaped would land inside tmp_path
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value.format(**files))
    before = _tree(files["root"], tmp_path)
    args = [a.format(**files) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    message = err.strip().splitlines()[-1]  # progress bars may come before it
    assert message.startswith("error: ") and fragment in message, err
    assert "Traceback" not in err
    assert _tree(files["root"], tmp_path) == before


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(files, tmp_path, monkeypatch, capsys, case):
    _check_refusal(files, tmp_path, monkeypatch, capsys, *case[1:])


# Damaged runs and inputs whose refusal lives outside the command line (run store, op-score
# reader, criteria options, run lock).
BROKEN_RUNS = [  # run folders damaged in one way (fixture ``broken``)
    ("show-epochs-record-shape", ["show", "{broken}/epochs-shape"], "epochs.jsonl"),
    ("select-epochs-record-shape", ["select", "{broken}/epochs-shape", "--criteria", "magnitude"],
     "epochs.jsonl"),
    ("select-config-other-shape", ["select", "{broken}/config-keys"], "config.json"),
    ("status-config-other-shape", ["status", "{broken}"], "config.json"),
    ("report-config-other-shape", ["report", "table", "{broken}"], "/broken/"),  # the first damaged run found
    ("select-checkpoint-wrong-inside", ["select", "{broken}/checkpoint", "--criteria", "magnitude"],
     "epoch-0001.pt"),
    ("select-option-choice", ["select", "{run}", "--criteria", "ostr", "--option", "ostr.variant=bogus"],
     "bogus"),
    ("search-cifar-truncated", ["search", "--data-dir", "{root}/cut-cifar"] + TINY, "data_batch_3"),
    ("show-config-other-shape", ["show", "{broken}/config-keys"], "config.json"),
    ("scores-huge-integer", ["tau", "--scores", "{root}/huge-int.json"], "huge-int.json"),
    ("scores-long-integer", ["tau", "--scores", "{root}/long-int.json"], "long-int.json"),
    ("scores-deep-nesting", ["tau", "--scores", "{root}/deep.json"], "deep.json"),
]


@pytest.fixture(scope="module")
def broken(files):
    """Copies of the fixture's run, each damaged in one way."""
    import json
    import shutil

    import torch

    from bench.atomic import sha256_file

    root = files["root"] / "broken"
    for name in ("epochs-shape", "config-keys", "checkpoint"):
        shutil.copytree(files["run"], root / name)
    (root / "epochs-shape" / "epochs.jsonl").write_text('[1, 2]\n{"epoch": "x"}\n')
    (root / "config-keys" / "config.json").write_text(json.dumps({"config": {"flavour": 1}, "seed": 0}))
    records = [json.loads(line) for line in (root / "checkpoint" / "epochs.jsonl").read_text().splitlines()]
    for record in records:  # the right keys, the wrong inside, and a matching checksum
        path = root / "checkpoint" / record["checkpoint"]["file"]
        torch.save({key: "junk" for key in torch.load(path, weights_only=False)}, path)
        record["checkpoint"]["sha256"] = sha256_file(path)
    (root / "checkpoint" / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", BROKEN_RUNS, ids=[c[0] for c in BROKEN_RUNS])
def test_damaged_input_is_refused(files, broken, tmp_path, monkeypatch, capsys, case):
    _check_refusal({**files, "broken": broken}, tmp_path, monkeypatch, capsys, *case[1:])


def test_every_command_of_the_parser_has_bad_input_cases():
    """The table covers each subcommand ``build_parser`` defines (a new command needs its cases)."""
    import re

    from bench.cli import build_parser

    commands = set(re.search(r"\{([a-z,]+)\}", build_parser().format_usage()).group(1).split(","))
    assert len(commands) >= 10
    covered = {c[1][0] for c in CASES + BROKEN_RUNS}
    assert commands <= covered, commands - covered
    names = [c[0] for c in CASES + BROKEN_RUNS]
    assert len(set(names)) == len(names)  # ids name one case each


def test_debug_shows_the_traceback_and_argparse_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "bench", "--debug", "search", "--profile", "huge"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "huge" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bench", "search", "--seed", "x"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "invalid int value: 'x'" in proc.stderr and "Traceback" not in proc.stderr
