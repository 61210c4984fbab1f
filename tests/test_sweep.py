"""Sweeps: parallel equals sequential, idempotence, a killed job resumes, failures, Dask."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.cli import main
from bench.runs import runstore, sweep
from conftest import run_records, smoke_spec, truncated_cifar

def _spec(tmp_path, name, results, **fields):
    return smoke_spec(tmp_path / f"{name}.toml", results, **fields)


def _outcome(jobs):
    return {job.run_path.name: run_records(job.run_path) for job in jobs}


def test_parallel_sweep_equals_sequential_and_is_idempotent(tmp_path, cifar_root):
    seq = _spec(tmp_path, "seq", tmp_path / "seq")
    par = _spec(tmp_path, "par", tmp_path / "par")
    # one thread per job in both: bitwise equality on CPU needs equal thread counts
    assert len(sweep.run_sweep(seq, 1, data_dir=str(cifar_root), progress=False, threads=1)) == 4
    results = sweep.run_sweep(par, 2, data_dir=str(cifar_root), progress=False, threads=1)
    assert sorted(r["status"] for r in results) == ["done"] * 4
    jobs_seq, jobs_par = sweep.expand(sweep.load_spec(seq)), sweep.expand(sweep.load_spec(par))
    assert [j.run_path.name for j in jobs_seq] == [j.run_path.name for j in jobs_par]  # deterministic run ids
    assert _outcome(jobs_seq) == _outcome(jobs_par)
    assert sweep.run_sweep(par, 2, data_dir=str(cifar_root), progress=False) == []  # nothing left to do
    from bench.runs.checkpoints import checkpoint_epochs

    for job in jobs_par:  # what a [select] block is checked against before the search is what a run keeps
        assert checkpoint_epochs(runstore.Run(job.run_path)) == sweep.expected_checkpoints(job.config)
    assert {r["state"] for r in sweep.status_rows(par)} == {"done"}
    # a kill between a job's search and the end of its selection: the search is done, the selection is not
    victim = jobs_par[1]
    asked = len(sweep.load_spec(par)["select"]["criteria"])  # epochs = "last": one checkpoint per run
    assert {r["selections"] for r in sweep.status_rows(par)} == {f"{asked}/{asked}"}
    (victim.run_path / "selections.jsonl").unlink()
    assert sweep.job_state(victim) == "selecting"
    assert [r["selections"] for r in sweep.status_rows(par)][1] == f"0/{asked}"
    rerun = sweep.run_sweep(par, 1, data_dir=str(cifar_root), progress=False, threads=1)
    assert [r["run"] for r in rerun] == [str(victim.run_path)]
    assert _outcome(jobs_par) == _outcome(jobs_seq)


def test_a_killed_job_is_resumed_and_only_it_runs(tmp_path, cifar_root):
    spec = _spec(tmp_path, "kill", tmp_path / "res", epochs=3)
    jobs = sweep.expand(sweep.load_spec(spec))
    victim = jobs[0]
    code = ("import sys; from bench.runs import sweep; j = sweep.expand(sweep.load_spec(sys.argv[1]))[0]; "
            "sweep.run_job(j, 1, sys.argv[2])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec), str(cifar_root)], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (victim.run_path / "checkpoints" / "epoch-0001.pt").exists():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert runstore.run_state(victim.run_path) in ("incomplete", "pending")
    assert not runstore.is_locked(victim.run_path)  # the dead holder's lock is released
    for job in jobs[1:]:
        assert sweep.run_job(job, 1, str(cifar_root))["status"] == "done"
    results = sweep.run_sweep(spec, 1, data_dir=str(cifar_root), progress=False, threads=1)
    assert [r["run"] for r in results] == [str(victim.run_path)]
    fresh = _spec(tmp_path, "fresh", tmp_path / "fresh", epochs=3)
    sweep.run_sweep(fresh, 1, data_dir=str(cifar_root), progress=False, threads=1)
    resumed = _outcome([victim])[victim.run_path.name]
    twin = sweep.expand(sweep.load_spec(fresh))[0]
    assert resumed == _outcome([twin])[twin.run_path.name]


def test_failures_are_recorded_and_retried(tmp_path, cifar_root, capsys):
    spec = _spec(tmp_path, "fail", tmp_path / "res")
    jobs = sweep.expand(sweep.load_spec(spec))
    broken = truncated_cifar(cifar_root, tmp_path / "broken-cifar")
    results = sweep.run_sweep(spec, 1, data_dir=str(broken), progress=False)
    assert {r["status"] for r in results} == {"failed"}
    assert "corrupt or truncated" in (jobs[0].run_path / "failed").read_text()
    assert sweep.run_sweep(spec, 1, data_dir=str(cifar_root), progress=False) == []  # failed jobs wait
    retried = sweep.run_sweep(spec, 1, retry_failed=True, data_dir=str(cifar_root), progress=False)
    assert sorted(r["status"] for r in retried) == ["done"] * 4
    assert main(["status", str(spec)]) == 0
    assert "done: 4" in capsys.readouterr().out


def test_second_holder_of_a_lock_is_refused(tmp_path):
    with runstore.run_lock(tmp_path / "run") as first:
        assert first and runstore.is_locked(tmp_path / "run")
        code = ("import sys; from pathlib import Path; from bench.runs import runstore; "
                "print(runstore.is_locked(Path(sys.argv[1])))")
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True
        )
        assert out.stdout.strip() == "True"
    assert not runstore.is_locked(tmp_path / "run")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("experiment = 1", "experiment must be a string"),
        ("profile = 'smoke'", "needs experiment"),
        ("experiment = 'x'\ncolour = 1", "unknown key"),
        ("experiment = 'x'\nseeds = 'a'", "must be a list"),
        ("experiment = 'x'\n[select]\nfoo = 1", "[select] has unknown"),
        ("experiment = 'x'\nmethods = ['magic']", "Unknown method"),
        ("experiment = 'x'\nmethods = ['darts']\n[overrides.nap]\nprune_every = 2",
         "[overrides.nap] names no method"),
        ("experiment = 'x'\nmethods = ['nap']\n[overrides.nap]\nmethod = 'darts'", "may not set method"),
        ("experiment = 'x'\nmethods = ['nap']\n[overrides.nap]\nprune_every = [2]", "must be a number"),
        ("experiment = 'x'\nmethods = ['nap']\n[overrides.nap]\ncolour = 2", "colour"),
        ("experiment = 'x'\nmethods = ['entrannas']\n[overrides.entrannas]\nengine_cells = 'stage-first'",
         "method entrannas: engine_cells=stage-first with N=1"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_specs(tmp_path, text, fragment, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path)]) == 2
    assert fragment in capsys.readouterr().err


def test_options_flat_or_one_table_per_criterion(tmp_path):
    flat = {"darts-pt-proj.proj_intv": 2, "ostr.variant": "exact", "eoinas.lam": 0.25}
    tables = {"darts-pt-proj": {"proj_intv": 2}, "ostr": {"variant": "exact"}, "eoinas": {"lam": 0.25}}
    expected = ["darts-pt-proj.proj_intv=2", "ostr.variant=exact", "eoinas.lam=0.25"]
    assert sweep.option_items(flat, "x") == sweep.option_items(tables, "x") == expected
    assert sweep.option_items({"ostr": {"flag": True}}, "x") == ["ostr.flag=true"]
    with pytest.raises(sweep.UserError, match="must be a number"):
        sweep.option_items({"ostr": {"variant": [1]}}, "x")
    path = tmp_path / "opts.toml"
    path.write_text(
        'experiment = "o"\n[select.options.ostr]\nvariant = "exact"\n[select.options]\n'
        '"darts-pt-proj.proj_intv" = 2\n'
    )
    assert sweep.option_items(sweep.load_spec(path)["select"]["options"], "x") == [
        "ostr.variant=exact",
        "darts-pt-proj.proj_intv=2",
    ]


def test_overrides_for_one_method_change_only_its_jobs(tmp_path):
    """``[overrides.<method>]`` applies after ``[overrides]`` to that method's jobs; the other
    methods' configs (and run ids) are those of a spec without it."""
    from bench.search import config

    base = 'experiment = "o"\nprofile = "smoke"\nmethods = ["darts", "nap"]\n[overrides]\nepochs = 4\n'
    plain, tuned = tmp_path / "plain.toml", tmp_path / "tuned.toml"
    plain.write_text(base)
    tuned.write_text(base + "[overrides.nap]\nprune_every = 3\nepochs = 6\n")
    before = {j.method: j for j in sweep.expand(sweep.load_spec(plain))}
    after = {j.method: j for j in sweep.expand(sweep.load_spec(tuned))}
    assert after["darts"].config == before["darts"].config
    assert after["darts"].run_path == before["darts"].run_path
    assert (after["nap"].config.prune_every, after["nap"].config.epochs) == (3, 6)
    assert after["nap"].config == config.resolve("smoke", ["epochs=6", "prune_every=3"], "nap")
    assert after["nap"].run_path != before["nap"].run_path


def test_expected_checkpoints():
    from bench.search import config

    cfg = config.resolve("smoke", ["epochs=7", "checkpoint_every=3"])
    assert sweep.expected_checkpoints(cfg) == [3, 6, 7]
    assert sweep.expected_checkpoints(cfg.replace(epochs=6)) == [3, 6]


def test_dask_local_cluster(tmp_path, cifar_root):
    from distributed import LocalCluster

    spec = _spec(tmp_path, "dask", tmp_path / "dask", methods=("darts",))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        results = sweep.run_sweep(
            spec,
            backend="dask",
            scheduler=cluster.scheduler_address,
            data_dir=str(cifar_root),
            progress=False,
            threads=1,
        )
    assert sorted(r["status"] for r in results) == ["done", "done"]
    local = _spec(tmp_path, "local", tmp_path / "local", methods=("darts",))
    sweep.run_sweep(local, 1, data_dir=str(cifar_root), progress=False, threads=1)
    assert _outcome(sweep.expand(sweep.load_spec(spec))) == _outcome(sweep.expand(sweep.load_spec(local)))


def test_gpu_jobs_take_one_device_each(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert sweep.job_devices(4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:0"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert sweep.job_devices(2) == [None, None]
