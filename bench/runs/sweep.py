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
    [overrides.nap]              # optional: fields for one method's jobs only (after the above)
    prune_every = 5
    [select]                     # optional: criteria applied after each search
    criteria = ["magnitude", "darts-pt"]
    epochs = "last"
    valid_size = 256

Several ``[[select]]`` tables instead of one ``[select]`` apply several selection passes,
each with its own criteria, epochs, sizes and options (``examples/reference.toml``).
"""
from __future__ import annotations

import functools
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UserError
from bench.paths import experiment_name, writable_dir
from bench.runs.runstore import Run, is_locked, run_id, run_lock, run_state
from bench.search.config import SearchConfig, check_seed, resolve

_SPEC_TYPES = {"experiment": str, "profile": str, "profiles": list, "methods": list, "seeds": list,
               "results": str, "overrides": dict, "select": (dict, list)}
_SELECT_TYPES = {"criteria": list, "epochs": (str, int), "valid_size": int, "options": dict,
                 "supernet_tau": int}
_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a table"}
_SCALAR = (bool, int, float, str)


@dataclass(frozen=True)
class Job:
    experiment: str
    profile: str
    method: str
    seed: int
    config: SearchConfig
    results: str
    select: dict | list = field(default_factory=dict, hash=False, compare=False)
    """The spec's ``[select]`` table or ``[[select]]`` tables (``select_blocks``)."""

    @property
    def run_path(self) -> Path:
        return Path(self.results) / self.experiment / run_id(self.config, self.seed, self.profile)


def load_spec(path: str | Path) -> dict:
    """Read and check a spec (``check_spec``); every problem is a ``UserError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"Sweep spec {path} {problem}; give a TOML file like examples/smoke.toml")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"Sweep spec {path} is not UTF-8 text (byte {err.start}); give a TOML file like "
                        f"examples/smoke.toml") from None
    except OSError as err:
        raise UserError(f"Sweep spec {path} could not be read ({err.strerror or err})") from None
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"Sweep spec {path} is not valid TOML ({err}); see examples/smoke.toml") from None
    check_spec(spec, f"Sweep spec {path}")
    return spec


def check_spec(spec: dict, where: str) -> None:
    """Keys, types and values of a spec that need no config: names, lists, seeds, the results root."""
    _check_keys(spec, _SPEC_TYPES, where)
    if "experiment" not in spec:
        raise UserError(f"{where} needs experiment = \"name\"")
    experiment_name(spec["experiment"], f"{where}: experiment")
    for key, kind in (("profiles", str), ("methods", str), ("seeds", int)):
        if key in spec:
            _check_list(spec[key], kind, f"{where}: {key}")
    for seed in spec.get("seeds", []):
        check_seed(seed, f"{where}: each of seeds")
    if "results" in spec and not spec["results"].strip():
        raise UserError(f"{where}: results must name a folder (or be left out for the default)")
    methods = spec.get("methods", ["darts"])
    for key, value in spec.get("overrides", {}).items():
        if isinstance(value, dict):
            if key not in methods:
                raise UserError(f"{where}: [overrides.{key}] names no method of the spec; methods are "
                                f"{', '.join(methods)}")
            _check_overrides(value, f"{where}: [overrides.{key}]")
        else:
            _check_overrides({key: value}, f"{where}: [overrides]")
    if isinstance(spec.get("select"), list) and not spec["select"]:
        raise UserError(f"{where}: [[select]] is empty; give at least one table or leave it out")
    for select in select_blocks(spec.get("select")):
        if not isinstance(select, dict):
            raise UserError(f"{where}: each [[select]] must be a table, got {select!r}")
        _check_keys(select, _SELECT_TYPES, f"{where}: [select]")
        if "criteria" in select:
            _check_list(select["criteria"], str, f"{where}: [select] criteria")
        for key in ("valid_size", "supernet_tau"):
            if select.get(key, 0) < 0:
                raise UserError(f"{where}: [select] {key} must be >= 0, got {select[key]}")
        option_items(select.get("options", {}), f"{where}: [select] options")


def _check_overrides(table: dict, where: str) -> None:
    for key, value in table.items():
        if key == "method":
            raise UserError(f"{where} may not set method; list the methods in methods = [...]")
        if not isinstance(value, _SCALAR):
            raise UserError(f"{where} {key} = {value!r} must be a number, a string or true/false")


def overrides_for(spec: dict, method: str) -> list[str]:
    """``key=value`` overrides of one method's jobs: ``[overrides]`` scalars, then the method's own
    ``[overrides.<method>]`` table (which wins where both set a field)."""
    table = spec.get("overrides", {})
    fields = {k: v for k, v in table.items() if not isinstance(v, dict)} | table.get(method, {})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in fields.items()]


def select_blocks(select: dict | list | None) -> list[dict]:
    """The selection passes of a spec: one ``[select]`` table, several ``[[select]]`` tables, or none."""
    if not select:
        return []
    return list(select) if isinstance(select, list) else [select]


def _check_keys(table: dict, types: dict, where: str) -> None:
    unknown = set(table) - set(types)
    if unknown:
        raise UserError(f"{where} has unknown key(s) {sorted(unknown)}; allowed: {sorted(types)}")
    for key, value in table.items():
        kinds = types[key] if isinstance(types[key], tuple) else (types[key],)
        if isinstance(value, bool) or not isinstance(value, kinds):
            names = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise UserError(f"{where}: {key} must be {names}, got {value!r}")


def _check_list(values: list, kind: type, where: str) -> None:
    """A non-empty list of ``kind`` without repeats (a repeated entry would be the same run twice)."""
    if not values:
        raise UserError(f"{where} is empty; give at least one entry or leave the key out")
    if any(isinstance(v, bool) or not isinstance(v, kind) for v in values):
        raise UserError(f"{where} must hold {'integers' if kind is int else 'strings'}, got {values!r}")
    if len(set(values)) != len(values):
        raise UserError(f"{where} repeats an entry: {values!r}")


def option_items(options: dict, where: str) -> list[str]:
    """``[select] options`` as ``criterion.key=value`` strings: flat (``"darts-pt.bn_mode" = "eval"``)
    or one table per criterion (``[select.options.darts-pt]`` / dotted keys)."""
    items = []
    for key, value in options.items():
        pairs = [(f"{key}.{k}", v) for k, v in value.items()] if isinstance(value, dict) else [(key, value)]
        for name, item in pairs:
            if not isinstance(item, _SCALAR):
                raise UserError(f"{where}: {name} = {item!r} must be a number, a string or true/false")
            items.append(f"{name}={str(item).lower() if isinstance(item, bool) else item}")
    return items


def expand(spec: dict) -> list[Job]:
    """The jobs of a checked spec: profiles x methods x seeds, each with a resolved, validated config
    and a validated ``[select]`` block, so that a bad spec fails before the first search."""
    from bench.paths import results_dir

    profiles = spec.get("profiles") or [spec.get("profile", "smoke")]
    results = str(spec.get("results") or results_dir())
    jobs = []
    for profile in profiles:
        configs = {method: _resolve_job(profile, overrides_for(spec, method), method)
                   for method in spec.get("methods", ["darts"])}
        for cfg in configs.values():
            for block in select_blocks(spec.get("select")):
                check_selection(block, cfg)
        for seed in spec.get("seeds", [0]):  # seed-major: a partial sweep has every method's first seed
            for method, cfg in configs.items():
                jobs.append(Job(spec["experiment"], profile, method, int(seed), cfg, results,
                                spec.get("select", {})))
    return jobs


def _resolve_job(profile: str, overrides: list[str], method: str) -> SearchConfig:
    try:
        return resolve(profile, overrides, method)
    except UserError as err:
        raise UserError(f"Sweep job profile {profile}, method {method}: {err}") from None


def expected_checkpoints(cfg: SearchConfig) -> list[int]:
    """The epochs whose checkpoints a complete run keeps: every ``checkpoint_every``-th and the last."""
    return sorted({e for e in range(1, cfg.epochs + 1) if e % cfg.checkpoint_every == 0} | {cfg.epochs})


def check_selection(block: dict, cfg: SearchConfig) -> None:
    """A ``[select]`` block against the run it will apply to: criteria, epochs, options, sizes."""
    from bench.runs import select

    select.parse_criteria(",".join(block.get("criteria", ["magnitude"])))
    select.parse_epochs(str(block.get("epochs", "last")), expected_checkpoints(cfg))
    select.parse_options(option_items(block.get("options", {}), "[select] options"))
    check_supernet_tau(block.get("supernet_tau", 0), "[select] supernet_tau")


def check_supernet_tau(n: int, what: str) -> int:
    """``n`` if protocol 4 can sample that many distinct cells with an input-output path."""
    if n < 0:
        raise UserError(f"{what} must be >= 0 (0 = off), got {n}")
    if n:
        alive = _cells_with_a_path()
        if n > alive:
            raise UserError(f"{what} = {n} exceeds the {alive} cells with an input-output path")
    return n


@functools.cache
def _cells_with_a_path() -> int:
    from bench.nb201 import space

    return sum(space.has_path(tuple(c)) for c in space.all_cells())


def run_job(job: Job, threads: int | None = None, data_dir: str | None = None,
            device: str | None = None) -> dict:
    """Run one job (search, then selection) in this process; never raises for a job's own failure."""
    import torch

    from bench.device import keep_freed_host_memory
    from bench.runs import experiment, select

    keep_freed_host_memory()
    if threads:
        torch.set_num_threads(threads)
    began = time.perf_counter()
    run = Run(job.run_path)
    with run_lock(run.path) as mine:
        if not mine:
            return {"run": str(run.path), "status": "running elsewhere", "seconds": 0.0}
        try:
            experiment.search(job.profile, job.config, job.seed, job.experiment, data_dir=data_dir,
                              device=device, progress=False, run=run, lock=False)
            for sel in select_blocks(job.select):
                names, epochs, options = selection_request(sel, run)
                select.apply(run, names, epochs, options, sel.get("valid_size"),
                             supernet_tau=sel.get("supernet_tau", 0), data_dir=data_dir, device=device,
                             progress=False)
            status = "done"
        except Exception as err:  # recorded in RUN/failed by experiment.search or here
            if not (run.path / "failed").exists():
                run.mark_failed(err)
            status = "failed"
    return {"run": str(run.path), "status": status, "seconds": round(time.perf_counter() - began, 2),
            "device": device}


def job_devices(count: int) -> list[str | None]:
    """One device per job when several GPUs are visible (job i on GPU i mod n), else the default."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus <= 1:
        return [None] * count
    return [f"cuda:{i % gpus}" for i in range(count)]


def selection_request(block: dict, run: Run, available: list[int] | None = None
                      ) -> tuple[list[str], list[int], dict[str, dict]]:
    """The criteria, checkpoint epochs and criterion options that one ``[select]`` block asks for;
    ``available``: the checkpoint epochs to choose from (default: those on disk now)."""
    from bench.runs import select
    from bench.runs.checkpoints import checkpoint_epochs

    names = select.parse_criteria(",".join(block.get("criteria", ["magnitude"])))
    available = checkpoint_epochs(run) if available is None else available
    epochs = select.parse_epochs(str(block.get("epochs", "last")), available)
    return names, epochs, select.parse_options(option_items(block.get("options", {}), "[select] options"))


def selection_progress(job: Job, planned: bool = False) -> tuple[int, int]:
    """(held, asked): how many of the selection records the job's ``[select]`` blocks ask for
    ``selections.jsonl`` holds, and how many they ask for: of the checkpoints on disk now, or
    with ``planned`` of those the whole search will keep (``expected_checkpoints``)."""
    blocks = select_blocks(job.select)
    if not blocks:
        return 0, 0
    from bench.runs import select

    run = Run(job.run_path)
    done = {select.selection_key(r) for r in run.selections()}
    available = expected_checkpoints(job.config) if planned else None
    wanted = set()
    for block in blocks:
        names, epochs, options = selection_request(block, run, available)
        wanted |= {select.selection_key(r)
                   for r in select.planned(epochs, names, options, block.get("valid_size"),
                                           True, block.get("supernet_tau", 0))}
    return len(wanted & done), len(wanted)


def selections_missing(job: Job) -> int:
    """Selection records the job's ``[select]`` blocks ask for that ``selections.jsonl`` does not hold yet."""
    held, asked = selection_progress(job)
    return asked - held


def job_state(job: Job) -> str:
    """``state`` of the job's run, with ``selecting`` for a finished search whose selections are incomplete
    (a kill between the search and the end of its selection)."""
    s = run_state(job.run_path)
    if s == "done" and selections_missing(job):
        return "running" if is_locked(job.run_path) else "selecting"
    return s


def plan(jobs: list[Job], retry_failed: bool = False) -> list[Job]:
    """Jobs to run now: not done and not running; failed ones only with ``retry_failed``
    (and then only those)."""
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


def run_sweep(spec_path: str | Path, jobs_in_parallel: int = 1, backend: str = "loky",
              scheduler: str | None = None, retry_failed: bool = False, data_dir: str | None = None,
              progress: bool = True, threads: int | None = None) -> list[dict]:
    """Run every pending job of a spec; returns one result dict per job run now.

    Each job gets ``threads`` torch threads (default: the cores divided by the parallel jobs).
    CPU results are bit-identical across runs only at equal thread counts (the conv kernels
    reduce in a thread-dependent order): pin ``threads`` to compare a parallel sweep with a
    sequential one."""
    import joblib
    from tqdm import tqdm

    check_request(backend, scheduler, jobs_in_parallel, threads)
    jobs = expand(load_spec(spec_path))
    if backend == "loky":  # a cluster's workers see their own filesystems and devices
        check_targets(jobs, data_dir)
    todo = plan(jobs, retry_failed)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs_in_parallel)
    results: list[dict] = []
    if not todo:
        return results
    client = _connect(scheduler) if backend == "dask" else None
    devices = job_devices(len(todo))
    tasks = (joblib.delayed(run_job)(job, threads, data_dir, dev) for job, dev in zip(todo, devices))
    bar = tqdm(total=len(todo), desc="sweep", unit="job", disable=not progress)
    if client is not None:
        with client, joblib.parallel_config(backend="dask"):
            for out in joblib.Parallel(n_jobs=-1, return_as="generator_unordered")(tasks):
                results.append(out)
                bar.update()
    elif jobs_in_parallel == 1:
        for job, dev in zip(todo, devices):
            results.append(run_job(job, threads, data_dir, dev))
            bar.update()
    else:
        for out in joblib.Parallel(n_jobs=jobs_in_parallel, backend="loky",
                                   return_as="generator_unordered")(tasks):
            results.append(out)
            bar.update()
    bar.close()
    return results


def _connect(scheduler: str):
    """A ``distributed.Client`` of the scheduler, or a ``UserError`` saying it cannot be reached."""
    from distributed import Client

    try:
        return Client(scheduler)
    except (OSError, ValueError) as err:  # a malformed address, or nothing listening there
        raise UserError(f"--scheduler {scheduler}: cannot connect ({err}); start one with "
                        f"`dask scheduler` and pass its tcp://HOST:PORT") from None


def check_request(backend: str, scheduler: str | None, jobs_in_parallel: int, threads: int | None) -> None:
    """The sweep's own options (the CLI's argparse types check the same for the command line)."""
    if backend not in ("loky", "dask"):
        raise UserError(f"--backend must be loky or dask, not {backend!r}")
    if backend == "dask" and not scheduler:
        raise UserError("--backend dask needs --scheduler tcp://HOST:PORT (start one with `dask scheduler`)")
    if backend != "dask" and scheduler:
        raise UserError(f"--scheduler {scheduler} is for --backend dask; add --backend dask or drop "
                        f"--scheduler")
    if jobs_in_parallel < 1:
        raise UserError("--jobs must be at least 1")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")


def check_targets(jobs: list[Job], data_dir: str | None) -> None:
    """What the jobs on this machine will touch, before the first one starts: the device, CIFAR-10,
    the results root and each run folder."""
    from bench import data
    from bench.device import choose
    from bench.paths import default_data_dir

    choose()
    data.locate(Path(data_dir) if data_dir else default_data_dir())
    for root in sorted({job.results for job in jobs}):
        writable_dir(root, "results folder")
    for job in jobs:
        writable_dir(job.run_path, "run folder")


def status_rows(target: str | Path) -> list[dict]:
    """One row per job of a spec (or per run folder of an experiment directory): state, epochs
    recorded of the total, selection records held of those the spec asks for over the whole
    search (of a folder: held), search seconds."""
    target = Path(target)
    if target.suffix == ".toml":
        paths = [(j.run_path, j.config.epochs, job_state(j), "{}/{}".format(*selection_progress(j, True)))
                 for j in expand(load_spec(target))]
    elif target.is_dir():
        paths = [(p, Run(p).config().epochs, run_state(p), str(len(Run(p).selections())))
                 for p in sorted(target.iterdir()) if (p / "config.json").exists()]
        if not paths:
            raise UserError(f"{target} holds no run folders (none has a config.json); give "
                            f"results/<experiment> or a sweep spec")
    else:
        raise UserError(f"{target} is neither a sweep spec (.toml) nor an experiment folder")
    rows = []
    for path, total, current, selections in paths:
        records = Run(path).epochs()
        rows.append({"run": path.name, "state": current, "epochs": f"{len(records)}/{total}",
                     "selections": selections,
                     "elapsed_s": round(sum(r.get("seconds", 0.0) for r in records), 1)})
    return rows
