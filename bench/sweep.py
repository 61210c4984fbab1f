"""Sweeps: a grid of searches (and selections) from one TOML spec, run through joblib.

Locally the jobs run on joblib's ``loky`` backend, each pinned to a share of the cores
(``torch.set_num_threads``); on a cluster the same spec runs on a ``dask.distributed``
scheduler through joblib's Dask backend (``--backend dask --scheduler tcp://HOST:8786``),
with ``results`` on a shared filesystem.  No scheduler of our own: joblib/Dask schedule.

Every job is a run id derived from config and seed, so a finished job is never run twice,
an interrupted one resumes from its checkpoint, and a failed one keeps its traceback in
``RUN/failed`` (re-run with ``--retry-failed``).  A per-run lock (``fcntl.flock`` on
``RUN/.lock``, released by the kernel when its holder dies) keeps two sweeps from writing
the same run; the second one skips it as "running".

Spec (see ``examples/smoke.toml``)::

    experiment = "name"          # results/<experiment>/
    profile = "smoke"            # or profiles = ["smoke", "cpu"]
    methods = ["darts", "nap"]
    seeds = [0, 1]
    results = "/shared/results"  # optional: the results root (default: results/ or $BENCH_RESULTS)
    [overrides]                  # SearchConfig fields for every job
    epochs = 2
    [select]                     # optional: criteria applied after each search
    criteria = ["magnitude", "darts-pt"]
    epochs = "last"
    valid_size = 256
"""
from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import SearchConfig, resolve
from bench.errors import UserError
from bench.runstore import Run, is_locked, run_id, run_lock

_SPEC_KEYS = {"experiment", "profile", "profiles", "methods", "seeds", "results", "overrides", "select"}
_SELECT_KEYS = {"criteria", "epochs", "valid_size", "options", "supernet_tau"}


@dataclass(frozen=True)
class Job:
    experiment: str
    profile: str
    method: str
    seed: int
    config: SearchConfig
    results: str
    select: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def run_path(self) -> Path:
        return Path(self.results) / self.experiment / run_id(self.config, self.seed, self.profile)


def load_spec(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Sweep spec {path} does not exist; see examples/smoke.toml for the format")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"Sweep spec {path} is not valid TOML ({err}); see examples/smoke.toml") from None
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise UserError(f"Sweep spec {path} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    if "experiment" not in spec or not isinstance(spec["experiment"], str) or not spec["experiment"]:
        raise UserError(f"Sweep spec {path} needs experiment = \"name\"")
    for key in ("methods", "seeds", "profiles"):
        if key in spec and not isinstance(spec[key], list):
            raise UserError(f"Sweep spec {path}: {key} must be a list, got {spec[key]!r}")
    if any(not isinstance(s, int) or isinstance(s, bool) for s in spec.get("seeds", [0])):
        raise UserError(f"Sweep spec {path}: seeds must be integers, got {spec.get('seeds')!r}")
    unknown = set(spec.get("select", {})) - _SELECT_KEYS
    if unknown:
        raise UserError(f"Sweep spec {path}: [select] has unknown key(s) {sorted(unknown)}; allowed: {sorted(_SELECT_KEYS)}")
    return spec


def expand(spec: dict) -> list[Job]:
    """The jobs of a spec: profiles x methods x seeds, each with a resolved, validated config."""
    from bench.paths import results_dir

    profiles = spec.get("profiles") or [spec.get("profile", "smoke")]
    overrides = [f"{k}={v}" if not isinstance(v, bool) else f"{k}={str(v).lower()}"
                 for k, v in spec.get("overrides", {}).items()]
    results = str(spec.get("results") or results_dir())
    jobs = []
    for profile in profiles:
        for method in spec.get("methods", ["darts"]):
            cfg = resolve(profile, overrides, method)
            for seed in spec.get("seeds", [0]):
                jobs.append(Job(spec["experiment"], profile, method, int(seed), cfg, results, spec.get("select", {})))
    return jobs


def state(path: Path) -> str:
    """done / failed / running / incomplete / pending."""
    run = Run(path)
    if run.is_done:
        return "done"
    if is_locked(path):
        return "running"
    if (path / "failed").exists():
        return "failed"
    if run.epochs():
        return "incomplete"
    return "pending"


def run_job(job: Job, threads: int | None = None, data_dir: str | None = None, device: str | None = None) -> dict:
    """Run one job (search, then selection) in this process; never raises for a job's own failure."""
    import torch

    from bench import experiment, select
    from bench.device import keep_freed_host_memory

    keep_freed_host_memory()
    if threads:
        torch.set_num_threads(threads)
    began = time.perf_counter()
    run = Run(job.run_path)
    with run_lock(run.path) as mine:
        if not mine:
            return {"run": str(run.path), "status": "running elsewhere", "seconds": 0.0}
        try:
            experiment.search(job.profile, job.config, job.seed, job.experiment, data_dir=data_dir, device=device,
                              progress=False, run=run, lock=False)
            if job.select:
                sel = job.select
                names, epochs = selection_request(job, run)
                options = select.parse_options([f"{k}={v}" for k, v in sel.get("options", {}).items()])
                select.apply(run, names, epochs, options, sel.get("valid_size", 2000) or None,
                             supernet_tau=sel.get("supernet_tau", 0), data_dir=data_dir, device=device,
                             progress=False)
            status = "done"
        except Exception as err:  # recorded in RUN/failed by experiment.search or here
            if not (run.path / "failed").exists():
                run.mark_failed(err)
            status = "failed"
    return {"run": str(run.path), "status": status, "seconds": round(time.perf_counter() - began, 2), "device": device}


def job_devices(count: int) -> list[str | None]:
    """One device per job when several GPUs are visible (job i on GPU i mod n), else the default."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus <= 1:
        return [None] * count
    return [f"cuda:{i % gpus}" for i in range(count)]


def selection_request(job: Job, run: Run) -> tuple[list[str], list[int]]:
    """The criteria and checkpoint epochs that the job's ``[select]`` block asks for."""
    from bench import select
    from bench.search import checkpoint_epochs

    names = select.parse_criteria(",".join(job.select.get("criteria", ["magnitude"])))
    return names, select.parse_epochs(str(job.select.get("epochs", "last")), checkpoint_epochs(run))


def selections_missing(job: Job) -> int:
    """(epoch, criterion) pairs of the job's ``[select]`` block not yet in ``selections.jsonl``."""
    if not job.select:
        return 0
    from bench import select

    run = Run(job.run_path)
    names, epochs = selection_request(job, run)
    if job.select.get("supernet_tau"):
        names.append(select.SUPERNET)
    done = {(r["epoch"], r["criterion"]) for r in select.selections(run)}
    return sum((e, n) not in done for e in epochs for n in names)


def job_state(job: Job) -> str:
    """``state`` of the job's run, with ``selecting`` for a finished search whose selections are incomplete
    (a kill between the search and the end of its selection)."""
    s = state(job.run_path)
    if s == "done" and selections_missing(job):
        return "running" if is_locked(job.run_path) else "selecting"
    return s


def plan(jobs: list[Job], retry_failed: bool = False) -> list[Job]:
    """Jobs to run now: not done and not running; failed ones only with ``retry_failed`` (and then only those)."""
    todo = []
    for job in jobs:
        s = job_state(job)
        if retry_failed:
            if s == "failed":
                (job.run_path / "failed").unlink()
                todo.append(job)
        elif s in ("pending", "incomplete", "selecting"):
            todo.append(job)
    return todo


def run_sweep(spec_path: str | Path, jobs_in_parallel: int = 1, backend: str = "loky", scheduler: str | None = None,
              retry_failed: bool = False, data_dir: str | None = None, progress: bool = True,
              threads: int | None = None) -> list[dict]:
    """Run every pending job of a spec; returns one result dict per job run now.

    Each job gets ``threads`` torch threads (default: the cores divided by the parallel jobs).
    CPU results are bit-identical across runs only at equal thread counts (the conv kernels
    reduce in a thread-dependent order): pin ``threads`` to compare a parallel sweep with a
    sequential one."""
    import joblib
    from tqdm import tqdm

    if backend not in ("loky", "dask"):
        raise UserError(f"--backend must be loky or dask, not {backend!r}")
    if backend == "dask" and not scheduler:
        raise UserError("--backend dask needs --scheduler tcp://HOST:PORT (start one with `dask scheduler`)")
    if jobs_in_parallel < 1:
        raise UserError("--jobs must be at least 1")
    jobs = expand(load_spec(spec_path))
    todo = plan(jobs, retry_failed)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs_in_parallel)
    results: list[dict] = []
    if not todo:
        return results
    devices = job_devices(len(todo))
    tasks = (joblib.delayed(run_job)(job, threads, data_dir, dev) for job, dev in zip(todo, devices))
    bar = tqdm(total=len(todo), desc="sweep", unit="job", disable=not progress)
    if backend == "dask":
        from distributed import Client

        if not scheduler:
            raise UserError("--backend dask needs --scheduler tcp://HOST:PORT (start one with `dask scheduler`)")
        with Client(scheduler), joblib.parallel_config(backend="dask"):
            for out in joblib.Parallel(n_jobs=-1, return_as="generator_unordered")(tasks):
                results.append(out)
                bar.update()
    elif jobs_in_parallel == 1:
        for job, dev in zip(todo, devices):
            results.append(run_job(job, threads, data_dir, dev))
            bar.update()
    else:
        for out in joblib.Parallel(n_jobs=jobs_in_parallel, backend="loky", return_as="generator_unordered")(tasks):
            results.append(out)
            bar.update()
    bar.close()
    return results


def status_rows(target: str | Path) -> list[dict]:
    """One row per job of a spec (or per run folder of an experiment directory)."""
    target = Path(target)
    if target.suffix == ".toml":
        paths = [(j.run_path, j.config.epochs, job_state(j)) for j in expand(load_spec(target))]
    elif target.is_dir():
        paths = [(p, Run(p).config().epochs, state(p)) for p in sorted(target.iterdir())
                 if (p / "config.json").exists()]
    else:
        raise UserError(f"{target} is neither a sweep spec (.toml) nor an experiment folder")
    rows = []
    for path, total, current in paths:
        records = Run(path).epochs()
        rows.append({"run": path.name, "state": current, "epochs": f"{len(records)}/{total}",
                     "elapsed_s": round(sum(r.get("seconds", 0.0) for r in records), 1)})
    return rows
