"""``python -m bench``: the command line.  Each subcommand is a thin wrapper over a library call.

Bad input ends with exit code 2 and a one-paragraph message; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from bench.errors import UserError


def _seed(text: str) -> int:
    """argparse type: a generator seed, 0 to 2**32 - 1."""
    from bench.search.config import check_seed

    try:
        return check_seed(int(text), "the seed")
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _count(minimum: int):
    """argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _experiment(text: str) -> str:
    """argparse type: an experiment name (one folder under the results root)."""
    from bench.paths import experiment_name

    try:
        return experiment_name(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_benchmark_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", metavar="FILE",
                   help="ground truth: compact CSV/Parquet table, official .pth or NATS-Bench directory "
                   "(default: $BENCH_BENCHMARK or ../shared/data/nas-bench-201/nb201_accuracy.csv)")


class _Parser(argparse.ArgumentParser):
    """argparse with the harness's last line: ``error: <command>: <message>`` (exit code 2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description="NAS-Bench-201 architecture-selection harness")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    bench_p = sub.add_parser("benchmark", help="ground-truth tables: convert and show")
    bench_sub = bench_p.add_subparsers(dest="action", required=True)
    convert = bench_sub.add_parser("convert", help="read any benchmark source once and write a compact table")
    convert.add_argument("--from", dest="source", required=True, metavar="FILE",
                         help="official NAS-Bench-201 .pth, NATS-Bench topology directory, "
                         "or a CSV/Parquet table")
    convert.add_argument("--to", dest="target", required=True, metavar="FILE", help="output .parquet or .csv")
    show = bench_sub.add_parser("show", help="all metrics of one cell")
    show.add_argument("cell", help="NB201 string (quote it) or benchmark index")
    _add_benchmark_option(show)

    tau = sub.add_parser("tau", help="Kendall-tau report of an op-score matrix against the ground truth")
    tau.add_argument("--scores", required=True, metavar="FILE", help="6 x 5 op-score matrix as JSON or CSV "
                     "(rows: edges 1<-0,2<-0,2<-1,3<-0,3<-1,3<-2; columns: none,skip,conv1x1,conv3x3,pool)")
    tau.add_argument("--metrics", default=None,
                     help="comma-separated metrics (default: the three test accuracies)")
    tau.add_argument("--out", metavar="CSV", help="where to write the report (default: <scores>.tau.csv)")
    tau.add_argument("--bootstrap", type=_count(0), default=0, metavar="N",
                     help="bootstrap N resamples of architectures for a 95%% interval of the arch-level tau")
    _add_benchmark_option(tau)

    search = sub.add_parser("search", help="train a supernet and derive the magnitude cell every epoch")
    search.add_argument("--profile", default="smoke",
                        help="paper, darts-pt, smoke, cpu or reference (default: smoke)")
    search.add_argument("--method", default=None,
                        help="darts (default), darts-fix-alpha, nap, eoinas or entrannas; sets the "
                        "method's defaults on top of the profile")
    search.add_argument("--seed", type=_seed, default=0, help="0 to 2**32 - 1 (default 0)")
    search.add_argument("--experiment", type=_experiment, default="default",
                        help="results/<experiment>/ holds the run (letters, digits, '.', '_', '-')")
    search.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field (repeatable), e.g. --set epochs=10")
    search.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last checkpoint")
    search.add_argument("--restart-from", metavar="RUN",
                        help="start this (new) run from another run's last good "
                        "checkpoint, e.g. with a lower --set w_lr after a NaN")
    search.add_argument("--data-dir",
                        help="folder with cifar-10-batches-py/ or cifar-10-python.tar.gz (default: data/)")
    search.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when available)")
    search.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_benchmark_option(search)

    select = sub.add_parser("select", help="apply selection criteria to a run's checkpoints")
    select.add_argument("run", help="run folder results/<experiment>/<run-id>")
    select.add_argument("--criteria", default="all",
                        help="all (every one-shot criterion) or a comma list, e.g. "
                        "magnitude,darts-pt,ostr,eoinas,random,darts-pt-proj")
    select.add_argument("--epochs", default="all", help="all, last, every:K or a comma list (default all)")
    select.add_argument("--option", dest="options", action="append", default=[],
                        metavar="CRITERION.KEY=VALUE",
                        help="criterion option (repeatable), e.g. darts-pt.bn_mode=eval, ostr.variant=exact")
    select.add_argument("--valid-size", type=_count(0), default=None,
                        help="validation images per evaluation, from the alpha half (0 = all of it; "
                        "default: all of it for darts-pt-oneshot and darts-pt-proj, as DARTS-PT, "
                        "2000 for the others)")
    select.add_argument("--exclude-none", action="store_true",
                        help="never select 'none' (DARTS-space convention)")
    select.add_argument("--supernet-tau", type=_count(0), default=0, metavar="N",
                        help="also measure protocol 4 on a fixed sample of N cells per epoch (costly)")
    select.add_argument("--hessian", action="store_true",
                        help="also log the collapse indicator: the dominant eigenvalue of the "
                        "validation-loss Hessian w.r.t. alpha (RobustDARTS), on --valid-size images "
                        "(default 512)")
    select.add_argument("--data-dir")
    select.add_argument("--device")
    select.add_argument("--quiet", action="store_true")
    _add_benchmark_option(select)

    sweep = sub.add_parser("sweep", help="run a grid of searches (and selections) from a TOML spec")
    sweep.add_argument("spec", help="TOML spec, e.g. examples/smoke.toml")
    sweep.add_argument("--jobs", type=_count(1), default=1, help="jobs in parallel on this machine (loky)")
    sweep.add_argument("--backend", default="loky",
                       help="loky (this machine) or dask (a dask.distributed cluster)")
    sweep.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://10.0.0.1:8786")
    sweep.add_argument("--threads", type=_count(1), help="torch threads per job (default: cores / --jobs)")
    sweep.add_argument("--retry-failed", action="store_true", help="re-run only the jobs that failed")
    sweep.add_argument("--data-dir")
    sweep.add_argument("--quiet", action="store_true")

    status = sub.add_parser("status", help="state of every job of a sweep spec or experiment folder")
    status.add_argument("target", help="TOML spec or results/<experiment>")

    show_run = sub.add_parser("show", help="per-epoch table of a run: derived cell and its accuracies")
    show_run.add_argument("run", help="run folder results/<experiment>/<run-id>")
    _add_benchmark_option(show_run)

    report = sub.add_parser("report", help="comparison table, Kendall-tau report and degeneration curves "
                            "of an experiment")
    report.add_argument("what", choices=["table", "tau", "curves", "all"],
                        help="table (Markdown/LaTeX/CSV), tau (tables + figure), curves (figures) "
                        "or all (+ index.md)")
    report.add_argument("experiment", help="experiment name (results/<EXP>) or its folder")
    report.add_argument("--out", metavar="DIR", help="where to write (default: results/<EXP>/report)")
    report.add_argument("--random-n", default="10,100,1000", metavar="N,N,...",
                        help="random-search reference rows: expected best of N cells (default 10,100,1000)")
    _add_benchmark_option(report)

    perf = sub.add_parser("perf", help="benchmark the supernet steps against the naive reference")
    perf.add_argument("--repeats", type=_count(1), default=10,
                      help="timed steps per measurement (default 10)")
    perf.add_argument("--sizes", help="profiles whose sizes to time (default paper,cpu; with --methods, cpu)")
    perf.add_argument("--device")
    perf.add_argument("--methods", nargs="?", const="all", default=None,
                      help="instead: time every search method's schedule against DARTS at each of --sizes; "
                           "optionally a comma-separated list of methods")
    perf.add_argument("--epoch", action="store_true",
                      help="instead: time one whole DARTS search epoch per implementation at each of --sizes "
                           "(default cpu)")
    perf.add_argument("--steps", type=_count(1), default=None,
                      help="with --methods: step pairs timed per epoch (default 5); with --epoch: cut "
                           "the epoch to this many step pairs (default: all)")

    demo = sub.add_parser("demo", help="build the data if needed, run the smoke profile, print the result")
    demo.add_argument("--seed", type=_seed, default=0, help="0 to 2**32 - 1 (default 0)")
    demo.add_argument("--device")
    return parser


def cmd_benchmark(args) -> int:
    from bench.nb201 import benchmark

    if args.action == "convert":
        from bench.paths import output_file

        output_file(args.target, "--to", inputs=(args.source,))
        truth = benchmark.convert(args.source, args.target)
        if truth.origin.get("reused"):
            print(f"{args.target} already holds this source (same SHA-256); nothing to do")
            return 0
        print(f"wrote {args.target}: {int((truth.index >= 0).sum())} cells, "
              f"metrics {', '.join(truth.metric_names)}; source sha256 {truth.sha256[:16]}…")
        return 0
    truth = benchmark.load_cached(args.benchmark)
    cell = _cell_argument(args.cell)
    code = truth.code(cell)
    from bench.nb201 import space

    print(f"cell   {space.to_string(space.from_code(code))}")
    print(f"index  {truth.index[code]}")
    print(f"unique {space.iso_key(space.from_code(code))}")
    for name, value in truth.lookup(cell).items():
        print(f"{name:28s} {value:10.4f}")
    return 0


def _cell_argument(text: str) -> int | str:
    """A benchmark index (ASCII digits) as an int, anything else as a cell string for ``GroundTruth.code``."""
    if not (text.isascii() and text.isdigit()):
        return text
    if len(text) > 6:
        raise UserError(f"Benchmark index {text[:12]}... is out of range; NB201 indices run from 0 to 15624")
    return int(text)


def cmd_tau(args) -> int:
    import numpy as np
    import pandas as pd

    from bench import opscores, stats
    from bench.atomic import write_atomic
    from bench.nb201 import benchmark, space
    from bench.paths import output_file

    out = output_file(args.out or Path(args.scores).with_suffix(".tau.csv"), "--out", inputs=(args.scores,))
    scores = opscores.read_scores(args.scores)
    truth = benchmark.load_cached(args.benchmark)
    names = (args.metrics.split(",") if args.metrics
             else [m for m in benchmark.HEADLINE_METRICS if m in truth.metrics])
    truths = {m: truth.metric(m) for m in names}
    rows = stats.rank_report(scores, truths)
    if args.bootstrap > 0:
        cell_scores = stats.additive_scores(scores)
        for row in rows:
            if row["protocol"] == "1-arch" and row["subset"] == "all":
                low, high = stats.bootstrap_ci(stats.kendall_tau, cell_scores, truths[row["metric"]],
                                               n_boot=args.bootstrap, seed=0)
                row["tau_ci_low"], row["tau_ci_high"] = low, high
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "per_edge_tau"} for r in rows])
    cell = space.select_cell(scores)
    print(f"derived cell: {space.to_string(cell)}")
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in truth.lookup(cell, names).items()))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.drop(columns=[c for c in ("reference",) if c in frame]).to_string(
            index=False, float_format=lambda v: f"{v:.4f}" if np.isfinite(v) else "nan"))
    write_atomic(out, frame.to_csv(index=False, float_format="%.6f").encode())
    print(f"wrote {out}")
    return 0


def cmd_search(args) -> int:
    from bench.paths import writable_dir, writable_results_dir
    from bench.runs import experiment
    from bench.runs.runstore import Run, busy_error, is_locked
    from bench.search import config

    cfg = config.resolve(args.profile, args.overrides, args.method)
    _check_inputs(args.device, args.data_dir, args.benchmark)
    if args.restart_from:
        Run.open(args.restart_from)
    writable_results_dir()
    run = Run.for_config(args.experiment, cfg, args.seed, args.profile)
    writable_dir(run.path, "run folder")
    if run.is_done:
        print(f"{run.path} is complete; nothing to do")
    elif is_locked(run.path):  # before the interrupted-run check, which would misread a live run
        raise busy_error(run.path)
    elif run.epochs() and not args.resume and not args.restart_from:
        raise UserError(f"{run.path} holds an interrupted run ({len(run.epochs())} epochs); "
                        f"pass --resume to continue it")
    else:
        experiment.search(args.profile, cfg, args.seed, args.experiment, args.data_dir, args.device,
                          resume=args.resume or bool(args.restart_from), progress=not args.quiet, run=run,
                          restart_from=args.restart_from)
    print_run(run, args.benchmark)
    return 0


def _check_inputs(device: str | None, data_dir: str | None, benchmark: str | None) -> None:
    """The device, CIFAR-10 and the benchmark table a search needs, before its run folder exists."""
    from bench import data
    from bench import device as device_mod
    from bench.nb201 import benchmark as benchmark_mod
    from bench.paths import default_data_dir

    device_mod.choose(device)
    data.locate(Path(data_dir) if data_dir else default_data_dir())
    if benchmark:  # a search needs no table; one the user named must still be readable
        benchmark_mod.load_cached(benchmark)


def ground_truth(benchmark: str | None):
    """The table to score against: the one named by ``--benchmark`` or ``$BENCH_BENCHMARK`` (its
    errors stand), else the shared default table if it exists, else ``None`` (a run is then
    shown without accuracies)."""
    from bench.nb201 import benchmark as benchmark_mod
    from bench.paths import default_benchmark_file

    if benchmark or os.environ.get("BENCH_BENCHMARK") or default_benchmark_file().exists():
        return benchmark_mod.load_cached(benchmark)
    return None


def print_run(run, benchmark: str | None = None) -> None:
    """Per-epoch table of a run, each magnitude cell scored now against the table."""
    from bench import score
    from bench.nets.cellcost import cell_cost
    from bench.runs.runstore import Run

    run = Run.open(run.path if isinstance(run, Run) else run)
    records = run.epochs()
    truth = ground_truth(benchmark)
    print(f"run {run.path}  ({'complete' if run.is_done else 'incomplete'}, {len(records)} epochs)")
    if truth is None:
        print("no benchmark table found: accuracies left out (give --benchmark FILE)")
    print(f"{'epoch':>5} {'train':>6} {'valid':>6} {'C10':>6} {'C100':>6} {'IN16':>6} {'free':>4} {'tau':>7} "
          f"{'params':>6} {'MFLOPs':>7}  cell  (params in M, both at NB201's C=16 N=5 on CIFAR-10)")
    for r in records:
        scored = score.score_epoch(r, truth)
        acc = scored.get("accuracies", {})
        tau = scored.get("tau_arch", {}).get("kendall_tau", float("nan"))
        cost = (cell_cost(scored["cell"]) if scored.get("cell")
                else {"params_m": float("nan"), "flops_m": float("nan")})
        print(f"{r['epoch']:5d} {r['train_acc']:6.2f} {r['valid_acc']:6.2f} "
              f"{acc.get('cifar10_test', float('nan')):6.2f} "
              f"{acc.get('cifar100_test', float('nan')):6.2f} "
              f"{acc.get('ImageNet16-120_test', float('nan')):6.2f} "
              f"{scored.get('parameter_free_ops', -1):4d} {tau:7.4f} "
              f"{cost['params_m']:6.3f} {cost['flops_m']:7.2f}  "
              f"{scored.get('cell', '')}")
    _print_method_cell(run, truth)


def _print_method_cell(run, truth) -> None:
    """For a method whose alpha derives no cell (darts-fix-alpha), say where its cell comes from."""
    from bench.runs.records import selections
    from bench.search.methods import METHODS

    method = run.meta()["config"].get("method", "darts")
    criterion = getattr(METHODS.get(method), "cell_criterion", None)
    if criterion is None:
        return
    found = [r for r in selections(run, truth) if r["criterion"] == criterion]
    if not found:
        print(f"{method}'s cell is {criterion}'s (the cells above are argmax of untrained alpha): "
              f"python -m bench select {run.path} --criteria {criterion}")
        return
    last = max(found, key=lambda r: r["epoch"])
    acc = last.get("accuracies", {})
    print(f"{method}'s cell ({criterion} at epoch {last['epoch']}): {last['cell']}  "
          f"C10 {acc.get('cifar10_test', float('nan')):.2f}  "
          f"C100 {acc.get('cifar100_test', float('nan')):.2f}  "
          f"IN16 {acc.get('ImageNet16-120_test', float('nan')):.2f}")


def cmd_select(args) -> int:
    from bench.device import choose
    from bench.runs import records, select
    from bench.runs.checkpoints import checkpoint_epochs
    from bench.runs.runstore import Run
    from bench.runs.sweep import check_supernet_tau

    run = Run.open(args.run)
    if not args.criteria.replace(",", "").strip():
        raise UserError(f"--criteria {args.criteria!r} names no criterion; give all or a comma list, "
                        f"e.g. magnitude")
    names = select.parse_criteria(args.criteria)
    epochs = select.parse_epochs(args.epochs, checkpoint_epochs(run))
    check_supernet_tau(args.supernet_tau, "--supernet-tau")
    choose(args.device)
    written = select.apply(run, names, epochs, select.parse_options(args.options), args.valid_size,
                           allow_none=not args.exclude_none, supernet_tau=args.supernet_tau,
                           data_dir=args.data_dir, device=args.device, progress=not args.quiet,
                           hessian=args.hessian)
    print(f"{len(written)} new selection record(s) in {run.path / 'selections.jsonl'}")
    print(f"{'epoch':>5} {'criterion':14} {'C10':>6} {'C100':>6} {'IN16':>6} {'tau':>7} "
          f"{'cost(ep)':>8}  cell")
    for r in records.selections(run, ground_truth(args.benchmark)):
        if r["criterion"] in (records.SUPERNET, records.HESSIAN):
            if r["criterion"] == records.HESSIAN:
                print(f"{r['epoch']:5d} {'_hessian':14} dominant eigenvalue {r['hessian']['eigenvalue']:.4g} "
                      f"({r['hessian']['images']} images, {r['hessian']['hvps']} Hessian-vector products)")
            continue
        acc = r.get("accuracies", {})
        tau = next((x["kendall_tau"] for x in r.get("rank", [])
                    if x["protocol"] == "1-arch" and x["subset"] == "all" and x["metric"] == "cifar10_test"),
                   float("nan"))
        print(f"{r['epoch']:5d} {r['criterion']:14} {acc.get('cifar10_test', float('nan')):6.2f} "
              f"{acc.get('cifar100_test', float('nan')):6.2f} "
              f"{acc.get('ImageNet16-120_test', float('nan')):6.2f} "
              f"{tau:7.4f} {r['cost']['epoch_equivalents']:8.3f}  {r['cell']}")
    return 0


def cmd_sweep(args) -> int:
    from bench.runs import sweep

    started = time.perf_counter()
    results = sweep.run_sweep(args.spec, args.jobs, args.backend, args.scheduler, args.retry_failed,
                              args.data_dir, progress=not args.quiet, threads=args.threads)
    print(f"ran {len(results)} job(s) in {time.perf_counter() - started:.1f} s")
    _print_status(sweep.status_rows(args.spec))
    return 1 if any(r["status"] == "failed" for r in results) else 0


def _print_status(rows: list[dict]) -> None:
    from collections import Counter

    counts = Counter(r["state"] for r in rows)
    print(", ".join(f"{k}: {counts.get(k, 0)}"
                    for k in ("done", "running", "failed", "incomplete", "selecting", "pending")))
    print(f"  {'state':10} {'epochs':>7} {'selections':>10} {'search':>11}  run")
    for r in rows:
        print(f"  {r['state']:10} {r['epochs']:>7} {r['selections']:>10} {r['elapsed_s']:9.1f} s  {r['run']}")


def cmd_status(args) -> int:
    from bench.runs import sweep

    _print_status(sweep.status_rows(args.target))
    return 0


def cmd_show(args) -> int:
    print_run(args.run, args.benchmark)
    return 0


def cmd_report(args) -> int:
    from bench.report import build

    try:
        ns = tuple(int(n) for n in args.random_n.split(",") if n.strip())
    except ValueError:
        raise UserError(f"--random-n must be comma-separated integers, e.g. 10,100,1000; "
                        f"got {args.random_n!r}") from None
    if any(n < 1 or n > 15625 for n in ns):
        raise UserError(f"--random-n values must be between 1 and 15625, got {args.random_n!r}")
    _check_report_paths(args.experiment, args.out)
    files = build.run(args.what, args.experiment, args.benchmark, args.out, ns)
    if args.what == "table":
        print(files["table.md"].read_text())
    for name, path in files.items():
        print(f"wrote {path}")
    return 0


def _check_report_paths(experiment: str, out: str | None) -> None:
    """A report reads ``results/<name>`` or a folder the user names, and writes only into ``--out``
    (created if missing, never its parent), which may not be the experiment or one of its runs."""
    from bench.paths import experiment_name, output_dir
    from bench.report.aggregate import experiment_dir

    if not experiment or not Path(experiment).is_dir():
        experiment_name(experiment, "experiment")
    if out:
        folder = experiment_dir(experiment)
        runs = [p for p in folder.iterdir() if (p / "config.json").exists()]
        output_dir(out, "--out", inputs=(folder, *runs))


def cmd_perf(args) -> int:
    import torch

    from bench import perf
    from bench import device as device_mod
    from bench.search import config

    if args.epoch and args.methods is not None:
        raise UserError("perf: choose --epoch or --methods, not both")
    device_mod.choose(args.device)
    single = args.methods is not None or args.epoch
    sizes = tuple(s.strip() for s in (args.sizes or ("cpu" if single else "paper,cpu")).split(","))
    for s in sizes:
        config.profile(s)
    if args.epoch:
        for size in sizes:
            print(f"device {device_mod.choose(args.device)}, threads {torch.get_num_threads()}, size {size}, "
                  f"one DARTS search epoch per implementation, each in a fresh process")
            print(perf.format_epochs(size, perf.time_epoch(size, args.device, args.steps)))
        return 0
    if args.methods is not None:
        from bench.search.methods import METHODS

        names = tuple(METHODS) if args.methods == "all" else tuple(m.strip() for m in args.methods.split(","))
        unknown = [m for m in names if m not in METHODS]
        if unknown:
            raise UserError(f"Unknown method(s) {', '.join(unknown)}; available: {', '.join(METHODS)}")
        if "darts" not in names:
            names = ("darts",) + names  # the baseline of the ratio
        for size in sizes:
            print(f"device {device_mod.choose(args.device)}, threads {torch.get_num_threads()}, size {size}, "
                  f"{args.steps or 5} step pairs per epoch")
            stages, predicted = perf.time_methods(size, args.device, args.steps or 5, names)
            print(perf.format_methods(stages, predicted))
        return 0
    perf.run(repeats=args.repeats, sizes=sizes, device=args.device)
    return 0


def cmd_demo(args) -> int:
    import criteria
    from bench import data, score
    from bench.nb201 import benchmark
    from bench.paths import cifar_builder, default_data_dir
    from bench.runs import experiment
    from bench.search import config
    import subprocess

    from bench import device as device_mod
    from bench.paths import writable_results_dir

    device_mod.choose(args.device)
    writable_results_dir()
    root = default_data_dir()
    try:
        data.locate(root)
    except UserError:
        builder = cifar_builder()
        if not builder.exists():
            raise
        print(f"building CIFAR-10 into {root} with {builder}")
        subprocess.run([sys.executable, str(builder), "--out", str(root)], check=True)
    cfg = config.resolve("smoke")
    run = experiment.search("smoke", cfg, args.seed, "demo", device=args.device, progress=True)
    print_run(run)
    from bench.runs.checkpoints import load_supernet

    net = load_supernet(run, device=device_mod.choose(args.device))
    scores = criteria.compute("magnitude", net, owned=True)
    truth = benchmark.load_cached()
    scored = score.score_matrix(scores, truth)
    print(f"\nderived cell (magnitude, last epoch): {scored['cell']}  "
          f"(benchmark index {scored['cell_index']})")
    for name, value in scored["accuracies"].items():
        print(f"  {name:24s} {value:6.2f} %")
    tau = score.arch_tau(scores, truth)
    print(f"architecture-level Kendall tau of the magnitude scores vs CIFAR-10 test, all 15,625 cells: "
          f"{tau['kendall_tau']:.4f} (Spearman {tau['spearman']:.4f})")
    return 0


COMMANDS = {"benchmark": cmd_benchmark, "tau": cmd_tau, "search": cmd_search, "select": cmd_select,
            "sweep": cmd_sweep, "status": cmd_status, "show": cmd_show, "report": cmd_report,
            "perf": cmd_perf, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    from bench.device import keep_freed_host_memory

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as ended:  # argparse: usage errors (2) and --help (0), message already printed
        return ended.code if isinstance(ended.code, int) else 2
    keep_freed_host_memory()
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at exit
        return code
    except UserError as err:
        return _fail(args, str(err))
    except UnicodeDecodeError as err:
        return _fail(args, f"an input file is not UTF-8 text ({err.reason} at byte {err.start}); "
                           f"check {_inputs(args)}")
    except BrokenPipeError:  # the reader closed our stdout (e.g. `| head`): nothing more to print
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as err:
        if err.filename is None:
            raise
        return _fail(args, f"{err.filename}: {err.strerror or err}; check {_inputs(args)}")
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130


def _fail(args, message: str) -> int:
    """The one way a command ends on bad input: ``error: ...`` on stderr, exit code 2."""
    if args.debug:
        traceback.print_exc()
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # one line, whatever the message held
    return 2


_PATH_ARGS = ("source", "target", "scores", "benchmark", "spec", "run", "experiment", "restart_from",
              "data_dir", "out")


def _inputs(args) -> str:
    """The files and folders this command was given, for a message about one of them."""
    named = [str(getattr(args, key)) for key in _PATH_ARGS if getattr(args, key, None)]
    return ", ".join(named) or "the files and folders it uses"
