"""The fault matrix of docs/reliability.md: kills, corrupt and partial files, full disks,
NaNs, concurrent writers and changed inputs.  Subprocess tests kill real processes."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import atomic
from bench.errors import UserError
from bench.paths import PROJECT_ROOT
from bench.runs import experiment
from bench.runs.runstore import Run, is_locked, run_lock
from bench.search import config
from conftest import run_records, smoke_spec

TINY = ["--set", "epochs=3", "--set", "weight_size=256", "--set", "alpha_size=256",
        "--set", "batch_size=32", "--set", "C=4", "--set", "N=1"]


def _env(results: Path) -> dict:
    return {**os.environ, "BENCH_RESULTS": str(results), "OMP_NUM_THREADS": "1", "BENCH_DEVICE": "cpu",
            "PYTHONPATH": str(PROJECT_ROOT)}


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _bench(args: list[str], results: Path, kill_when=None, then_wait: float = 0.0) -> None:
    """Run ``python -m bench ARGS`` to the end, or: once ``kill_when()`` is true, wait ``then_wait``
    seconds more and SIGKILL the whole process group (asserting it was still running)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], env=_env(results), cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    if kill_when is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
        return
    deadline = time.monotonic() + 300
    while not kill_when() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(then_wait)
    assert proc.poll() is None, "the process ended before the kill: the test would prove nothing"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _only_run(results: Path) -> Path:
    return next(p for p in (results / "f").iterdir() if (p / "config.json").exists())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cifar_root) -> Path:
    """An uninterrupted search + selection, the twin every killed one must equal."""
    results = tmp_path_factory.mktemp("ref")
    _bench(["search", "--experiment", "f", "--quiet", "--data-dir", str(cifar_root)] + TINY, results)
    run = _only_run(results)
    _bench(["select", str(run), "--criteria", "magnitude,ostr,random", "--valid-size", "64", "--quiet"],
           results)
    return run


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_of_search_then_resume_equals_the_uninterrupted_run(tmp_path, cifar_root, reference, seed):
    rng = np.random.default_rng(seed)
    after_epochs, then_wait = int(rng.integers(0, 3)), float(rng.uniform(0.0, 0.5))
    args = ["search", "--experiment", "f", "--quiet", "--resume", "--data-dir", str(cifar_root)] + TINY
    log = tmp_path / "f" / reference.name / "epochs.jsonl"
    _bench(args, tmp_path, kill_when=lambda: _lines(log) >= after_epochs and (log.parent / ".lock").exists(),
           then_wait=then_wait)
    assert _lines(log) < 3  # killed before the end
    _bench(args, tmp_path)
    run = _only_run(tmp_path)
    assert run.name == reference.name and (run / "done").exists()
    assert run_records(run)[0] == run_records(reference)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_of_select_then_rerun_equals_the_uninterrupted_selection(tmp_path, reference, seed):
    run = tmp_path / "f" / reference.name
    shutil.copytree(reference, run)
    (run / "selections.jsonl").unlink()
    rng = np.random.default_rng(10 + seed)
    after_records, then_wait = int(rng.integers(0, 6)), float(rng.uniform(0.0, 0.3))
    args = ["select", str(run), "--criteria", "magnitude,ostr,random", "--valid-size", "64", "--quiet"]
    log = run / "selections.jsonl"
    _bench(args, tmp_path, then_wait=then_wait,
           kill_when=lambda: _lines(log) >= after_records and (run / ".select.lock").exists())
    assert _lines(log) < 9  # 3 epochs x 3 criteria: killed before the end
    _bench(args, tmp_path)
    assert run_records(run)[1] == run_records(reference)[1]


def test_sigkill_of_a_sweep_then_rerun_equals_the_uninterrupted_sweep(tmp_path, cifar_root):
    outcome = {}
    for name in ("whole", "killed"):
        path = smoke_spec(tmp_path / f"{name}.toml", tmp_path / name, experiment="s", seeds=(0,),
                          select_epochs="all")
        args = ["sweep", str(path), "--jobs", "1", "--threads", "1", "--quiet", "--data-dir", str(cifar_root)]
        if name == "killed":  # in the middle of the first job's search
            logs = lambda: list((tmp_path / name / "s").glob("*/epochs.jsonl"))  # noqa: E731
            _bench(args, tmp_path, kill_when=lambda: any(_lines(p) >= 1 for p in logs()), then_wait=0.2)
            assert not list((tmp_path / name / "s").glob("*/done"))
        _bench(args, tmp_path)
        runs = sorted((tmp_path / name / "s").iterdir())
        assert all((r / "done").exists() for r in runs)
        outcome[name] = {r.name: run_records(r) for r in runs}
    assert outcome["killed"] == outcome["whole"]


def test_partial_last_lines_are_ignored_and_rewritten(tmp_path):
    log = tmp_path / "selections.jsonl"
    atomic.append_jsonl(log, {"epoch": 1, "criterion": "a"})
    with open(log, "ab") as handle:
        handle.write(b'{"epoch": 2, "crit')  # a kill in the middle of a write
    assert atomic.read_jsonl(log) == [{"epoch": 1, "criterion": "a"}]
    atomic.append_jsonl(log, {"epoch": 2, "criterion": "b"})
    assert [json.loads(line) for line in log.read_text().splitlines()] == [{"epoch": 1, "criterion": "a"},
                                                                          {"epoch": 2, "criterion": "b"}]


def test_no_space_left_keeps_the_previous_file(tmp_path, monkeypatch):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    first = run.save_checkpoint(1, {"w": 1}, keep_every=1)
    before = (run.path / first["file"]).read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(UserError, match="No space left on device.*Free disk space"):
        run.save_checkpoint(2, {"w": 2}, keep_every=1)
    with pytest.raises(UserError, match="No space left"):
        atomic.write_json(run.path / "config.json", {"a": 1})
    assert (run.path / first["file"]).read_bytes() == before
    assert not run.checkpoint_file(2).exists() and not list(run.path.rglob("*.tmp"))


def test_append_on_a_full_disk_says_so(tmp_path, monkeypatch):
    log = tmp_path / "epochs.jsonl"
    atomic.append_jsonl(log, {"epoch": 1})
    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(UserError, match="No space"):
        atomic.append_jsonl(log, {"epoch": 2})
    monkeypatch.undo()
    assert atomic.read_jsonl(log)[0] == {"epoch": 1}


def test_nan_then_restart_from_the_last_good_checkpoint_with_a_lower_lr(tmp_path, cifar_root, monkeypatch):
    from bench.search import loop
    from bench.search.steps import NonFiniteLoss

    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path))
    real = loop.cosine_lr
    monkeypatch.setattr(loop, "cosine_lr", lambda cfg, epoch: real(cfg, epoch) if epoch == 0 else 1e12)
    cfg = config.resolve("smoke", [t for t in TINY if t != "--set"] + ["grad_clip=0"])
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step \d+"):
        experiment.search("smoke", cfg, 0, "nan", data_dir=cifar_root, progress=False)
    broken = Run.for_config("nan", cfg, 0, "smoke")
    assert [r["epoch"] for r in broken.epochs()] == [1] and (broken.path / "failed").exists()
    monkeypatch.setattr(loop, "cosine_lr", real)
    lower = config.resolve("smoke", [t for t in TINY if t != "--set"] + ["grad_clip=0", "w_lr=0.0125"])
    fixed = experiment.search("smoke", lower, 0, "nan", data_dir=cifar_root, progress=False,
                              restart_from=broken.path)
    assert fixed.path != broken.path and fixed.is_done
    records = fixed.epochs()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[0]["alpha"] == broken.epochs()[0]["alpha"] and records[1]["lr"] == pytest.approx(
        loop.cosine_lr(lower, 1))
    assert fixed.meta()["restarted_from"] == str(broken.path) and fixed.config().w_lr == 0.0125


def test_a_second_process_on_the_same_run_is_refused_and_a_dead_holder_is_taken_over(tmp_path, cifar_root):
    results = tmp_path
    cfg = config.resolve("smoke", [t for t in TINY if t != "--set"])
    run = Run.for_config("f", cfg, 0, "smoke")  # BENCH_RESULTS is the per-test results folder
    hold = ("import sys, time; from bench.runs.runstore import run_lock\n"
            "with run_lock(sys.argv[1]) as mine:\n    print(mine, flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run.path)], env=_env(results),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "True"
    with pytest.raises(UserError, match="being written by another process"):
        experiment.search("smoke", cfg, 0, "f", data_dir=cifar_root, progress=False)
    holder.kill()
    holder.wait()
    assert not is_locked(run.path)
    assert experiment.search("smoke", cfg, 0, "f", data_dir=cifar_root, progress=False).is_done
    with run_lock(run.path, ".select.lock") as mine:
        assert mine
        from bench.runs import select

        with pytest.raises(UserError, match="Another `select`"):
            select.apply(run, ["magnitude"], [3], valid_size=64, data_dir=cifar_root, progress=False)


def test_changed_training_data_is_refused(tmp_path, cifar_root):
    """A CIFAR-10 copy other than the run's is refused by checksum; the benchmark table is not the
    run's business any more (everything is scored at read time against the table a reader names)."""
    cfg = config.resolve("smoke", [t for t in TINY if t != "--set"] + ["epochs=1"])
    run = experiment.search("smoke", cfg, 0, "f", data_dir=cifar_root, progress=False)
    meta = run.meta()
    assert "benchmark" not in meta
    changed = json.loads(json.dumps(meta))
    changed["data"]["train_sha256"] = "0" * 64
    atomic.write_json(run.config_file, changed)
    from bench.runs import select

    with pytest.raises(UserError, match="training set changed"):
        select.apply(run, ["magnitude"], [1], valid_size=64, data_dir=cifar_root, progress=False)
    atomic.write_json(run.config_file, meta)
    assert len(select.apply(run, ["magnitude"], [1], valid_size=64, data_dir=cifar_root, progress=False)) == 1


def test_fault_matrix_document_lists_every_test():
    doc = (PROJECT_ROOT / "docs" / "reliability.md").read_text()
    here = Path(__file__).read_text()
    names = [line.split("(")[0][4:] for line in here.splitlines() if line.startswith("def test_")]
    missing = [n for n in names if n != "test_fault_matrix_document_lists_every_test" and n not in doc]
    assert not missing, missing
