"""The command line, run as a user runs it (subprocess for exit codes, main() for speed)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.nb201 import space

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def test_benchmark_show(capsys):
    assert main(["benchmark", "show", ALL_SKIP]) == 0
    out = capsys.readouterr().out
    assert "index  1835" in out and "cifar10_test" in out and "54.2967" in out
    assert main(["benchmark", "show", "1835"]) == 0
    assert "54.2967" in capsys.readouterr().out


def test_tau_report_json_and_csv(tmp_path, capsys, truth):
    c10, cells = truth.metric("cifar10_test"), space.all_cells()
    mean = np.array([[float(np.nanmean(c10[cells[:, e] == o])) for o in range(5)] for e in range(6)])
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(mean.tolist()))
    assert main(["tau", "--scores", str(scores), "--metrics", "cifar10_test", "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "derived cell" in out and "1-arch" in out
    report = pd.read_csv(tmp_path / "scores.tau.csv")
    marginal = report[(report.protocol == "2-op-marginal") & (report.subset == "mean")].iloc[0]
    assert marginal.kendall_tau == pytest.approx(1.0)
    arch = report[(report.protocol == "1-arch") & (report.subset == "all")].iloc[0]
    assert arch.tau_ci_low <= arch.kendall_tau <= arch.tau_ci_high
    csv = tmp_path / "scores.csv"
    frame = pd.DataFrame(mean, columns=space.OPS)
    frame.insert(0, "edge", ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"])
    frame.to_csv(csv, index=False)
    out_csv = str(tmp_path / "r.csv")
    assert main(["tau", "--scores", str(csv), "--metrics", "cifar10_test", "--out", out_csv]) == 0
    again = pd.read_csv(tmp_path / "r.csv")
    np.testing.assert_allclose(again.kendall_tau.to_numpy(), report.kendall_tau.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("content, suffix, fragment", [
    ("", ".json", "is empty"),
    ("{not json", ".json", "not valid JSON"),
    ("[[1,2,3]]", ".json", "got 1 rows"),
    ('{"x": 1}', ".json", "'scores' key"),
    (json.dumps([[1, 2, 3, 4, "a"]] * 6), ".json", "is not a number"),
    (json.dumps([[1, 2, 3, 4]] * 6), ".json", "must hold 5 numbers"),
    (json.dumps([[None] * 5] * 6), ".json", "no available op"),
    ("1,2,3,4,5\n" * 5, ".csv", "got 5 rows"),
    ("1,2,3,4,5\n" * 6, ".txt", "must end in .json or .csv"),
])
def test_bad_score_files(tmp_path, capsys, content, suffix, fragment):
    path = tmp_path / f"s{suffix}"
    path.write_text(content)
    assert main(["tau", "--scores", str(path)]) == 2
    assert fragment in capsys.readouterr().err


def test_missing_score_file_and_unknown_metric(tmp_path, capsys):
    assert main(["tau", "--scores", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = tmp_path / "s.json"
    path.write_text(json.dumps([[0, 1, 2, 3, 4]] * 6))
    assert main(["tau", "--scores", str(path), "--metrics", "cifar100_valid"]) == 2
    assert "it has:" in capsys.readouterr().err


def test_search_and_show(cifar_root, capsys, isolated_results, truth):
    args = ["search", "--profile", "smoke", "--seed", "1", "--experiment", "cli", "--quiet",
            "--data-dir", str(cifar_root), "--set", "epochs=2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "complete, 2 epochs" in out
    run_dir = next((isolated_results / "cli").iterdir())
    assert (run_dir / "done").exists() and len(list((run_dir / "checkpoints").glob("*.pt"))) == 2
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["show", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for record in (json.loads(line) for line in (run_dir / "epochs.jsonl").read_text().splitlines()):
        cell = space.select_cell(np.array(record["alpha"]))  # the magnitude cell of that epoch
        line = next(t for t in lines if t.startswith(f"{record['epoch']:5d} "))
        assert line.endswith(space.to_string(cell))
        assert f" {truth.lookup(cell, ['cifar10_test'])['cifar10_test']:6.2f} " in line


@pytest.mark.parametrize("override, fragment", [
    ("epochs=0", "positive integer"), ("epochs=two", "needs a value of type int"),
    ("colour=red", "key one of"), ("order=third", "must be one of"), ("w_lr=nan", "finite"),
    ("w_lr=-1", ">= 0"), ("weight_size=49900", "exceeds"),
])
def test_bad_config_values(capsys, override, fragment):
    assert main(["search", "--profile", "smoke", "--set", override]) == 2
    assert fragment in capsys.readouterr().err


def test_set_method_is_the_method_with_its_defaults():
    from bench.search import config

    nap = config.resolve("smoke", ["method=nap", "epochs=8"])
    assert nap == config.resolve("smoke", ["epochs=8"], "nap")
    assert nap == config.resolve("smoke", ["method=nap", "epochs=8"], "nap")
    assert (nap.method, nap.relaxation, nap.exclude_none) == ("nap", "sigmoid", True)
    assert config.resolve("smoke", ["method=darts"]) == config.resolve("smoke")


@pytest.mark.parametrize("seed, ok", [(0, True), (2**32 - 1, True), (-1, False), (2**32, False),
                                      (True, False), (1.0, False)])
def test_seed_range(seed, ok):
    from bench.errors import UserError
    from bench.search.config import check_seed

    if ok:
        assert check_seed(seed) == seed
    else:
        with pytest.raises(UserError, match="0 to 4294967295"):
            check_seed(seed)


@pytest.mark.parametrize("name, ok", [("cpu-study", True), ("a.b_c-1", True), ("x" * 100, True),
                                      ("x" * 101, False), ("", False), (".", False), ("..", False),
                                      (".hidden", False), ("-x", False), ("a/b", False), ("../x", False),
                                      ("/tmp/x", False), ("a b", False), ("a\nb", False), ("é", False),
                                      (5, False)])
def test_experiment_names_are_one_safe_folder_name(name, ok):
    from bench.errors import UserError
    from bench.paths import experiment_name

    if ok:
        assert experiment_name(name) == name
    else:
        with pytest.raises(UserError, match="one folder name"):
            experiment_name(name)


def test_output_paths(tmp_path):
    from bench.errors import UserError
    from bench.paths import output_dir, output_file, writable_dir

    (tmp_path / "in.json").write_text("[]")
    (tmp_path / "file").write_text("x")
    assert output_file(tmp_path / "out.csv", "--out", (tmp_path / "in.json",)) == tmp_path / "out.csv"
    assert output_dir(tmp_path / "new", "--out") == tmp_path / "new" and not (tmp_path / "new").exists()
    inputs = (tmp_path / "in.json",)
    for call, fragment in [(lambda: output_file(tmp_path / "in.json", "--out", inputs), "input"),
                           (lambda: output_file(tmp_path / "." / "in.json", "--out", inputs), "input"),
                           (lambda: output_file(tmp_path / "no" / "out.csv", "--out"), "does not exist"),
                           (lambda: output_file(tmp_path, "--out"), "is a folder"),
                           (lambda: output_dir(tmp_path / "file", "--out"), "is a file"),
                           (lambda: output_dir(tmp_path / "no" / "dir", "--out"), "does not exist"),
                           (lambda: output_dir(tmp_path, "--out", (tmp_path,)), "input"),
                           (lambda: writable_dir(tmp_path / "file" / "sub", "results"), "is not a folder")]:
        with pytest.raises(UserError, match=fragment):
            call()
    assert not (tmp_path / "no").exists()


def test_empty_environment_variables_count_as_unset(monkeypatch):
    from bench import paths

    monkeypatch.setenv("BENCH_RESULTS", "")
    monkeypatch.setenv("BENCH_BENCHMARK", "")
    assert paths.results_dir() == paths.PROJECT_ROOT / "results"
    assert paths.default_benchmark_file().name == "nb201_accuracy.csv"


@pytest.mark.parametrize("name, fragment", [("meta", "not supported"), ("xla", "not supported"),
                                            ("tpu", "not a device"), ("cuda:x", "not a device"),
                                            ("mps", "MPS is not available")])
def test_unsupported_devices(monkeypatch, name, fragment):
    import torch

    from bench import device
    from bench.errors import UserError

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=fragment):
        device.choose(name)
    monkeypatch.setenv("BENCH_DEVICE", name)
    with pytest.raises(UserError, match=f"BENCH_DEVICE '{name}'"):
        device.choose()
    assert device.choose("cpu").type == "cpu"


def test_cuda_index_beyond_the_visible_devices(monkeypatch):
    import torch

    from bench import device
    from bench.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert str(device.choose("cuda:1")) == "cuda:1"
    with pytest.raises(UserError, match="2 CUDA device"):
        device.choose("cuda:2")


PAGE_FAULTS_PER_STEP = """
import resource, sys
import torch
from bench import device
from bench.runs.checkpoints import build_supernet
from bench.search import config
from bench.search.steps import make_optimizers, weight_step

if sys.argv[1] == "keep":
    device.keep_freed_host_memory()
cfg = config.PROFILES["smoke"]
net = build_supernet(cfg, 0, torch.device("cpu")).train()
w_opt, _ = make_optimizers(net, cfg)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
for _ in range(3):
    weight_step(net, w_opt, x, y, cfg.grad_clip)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    weight_step(net, w_opt, x, y, cfg.grad_clip)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, Linux page-fault counts")
def test_freed_activations_stay_with_the_process_for_the_next_step():
    """``keep_freed_host_memory`` (called by every command): a step's freed activations stay in
    the heap for the next step instead of going back to the OS and being faulted in again
    (a smoke-size weight step: about 14,600 page faults by default, under 100 with it)."""
    faults = {mode: int(subprocess.run([sys.executable, "-c", PAGE_FAULTS_PER_STEP, mode],
                                       capture_output=True, text=True, check=True).stdout)
              for mode in ("default", "keep")}
    assert faults["keep"] * 10 < faults["default"], faults


def test_every_command_keeps_freed_host_memory(monkeypatch, capsys):
    from bench import device

    calls = []
    monkeypatch.setattr(device, "keep_freed_host_memory", lambda: calls.append(1))
    assert main(["benchmark", "show", "1835"]) == 0
    assert calls == [1]


def test_a_reader_that_closes_the_pipe_early_gets_no_traceback():
    """`python -m bench ... | head -1`: the command stops quietly when its reader goes away."""
    cell = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    shell = (f"{sys.executable} -m bench benchmark show '{cell}' | head -c 1 >/dev/null; "
             f"echo \"exit=${{PIPESTATUS[0]}}\" >&2")
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert "exit=0" in done.stderr
