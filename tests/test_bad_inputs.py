"""The bad-input table: every command answers malformed input with exit code 2 and a
message that names the input and the fix, never a Python traceback (``--debug`` shows it)."""
import subprocess
import sys

import pytest

from bench.cli import main

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
    import os

    os.environ["BENCH_RESULTS"] = str(root / "results")
    try:
        assert main(["search", "--profile", "smoke", "--experiment", "bad", "--quiet", "--data-dir", str(cifar_root)]
                    + TINY) == 0
    finally:
        del os.environ["BENCH_RESULTS"]
    run = next((root / "results" / "bad").iterdir())
    return {"root": root, "run": run, "data": cifar_root}


# (id, argv with {root}/{run}/{data} placeholders, fragment the message must contain)
CASES = [
    # cell strings
    ("cell-empty", ["benchmark", "show", ""], "empty"),
    ("cell-too-few-nodes", ["benchmark", "show", "|nor_conv_3x3~0|"], "node group"),
    ("cell-unknown-op", ["benchmark", "show", GOOD.replace("nor_conv_1x1", "x").replace("skip_connect", "conv5x5")],
     "conv5x5"),
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
    ("tau-unknown-metric", ["tau", "--scores", "{root}/ok.json", "--metrics", "cifar11_test"], "cifar11_test"),
    ("tau-negative-bootstrap", ["tau", "--scores", "{root}/ok.json", "--bootstrap", "-3"], "--bootstrap"),
    # benchmark sources
    ("benchmark-missing", ["benchmark", "show", GOOD, "--benchmark", "{root}/none.csv"], "none.csv"),
    ("benchmark-empty", ["benchmark", "show", GOOD, "--benchmark", "{root}/empty.csv"], "empty.csv"),
    ("benchmark-wrong-format", ["benchmark", "show", GOOD, "--benchmark", "{root}/table.json"], "table.json"),
    ("benchmark-no-arch-column", ["benchmark", "show", GOOD, "--benchmark", "{root}/nocell.csv"], "nocell.csv"),
    ("convert-bad-target", ["benchmark", "convert", "--from", "{root}/nocell.csv", "--to", "{root}/t.xlsx"], "xlsx"),
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
    ("select-unknown-option", ["select", "{run}", "--criteria", "darts-pt", "--option", "darts-pt.colour=1"],
     "colour"),
    ("select-bad-option-value", ["select", "{run}", "--criteria", "ostr", "--option", "ostr.variant=bogus",
                                 "--data-dir", "{data}", "--valid-size", "32"], "bogus"),
    ("select-negative-masks-together", ["select", "{run}", "--criteria", "darts-pt", "--option",
                                        "darts-pt.masks_together=-1"], "masks_together"),
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
    # reports
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
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(files, capsys, argv, fragment):
    args = [a.format(**files) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    message = err.strip().splitlines()[-1]  # progress bars may come before it
    assert message.startswith("error: ") and fragment in message, err
    assert "Traceback" not in err


def test_the_table_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_debug_shows_the_traceback_and_argparse_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "bench", "--debug", "search", "--profile", "huge"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "huge" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bench", "search", "--seed", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid int value: 'x'" in proc.stderr and "Traceback" not in proc.stderr
