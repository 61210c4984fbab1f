"""``python -m bench perf``: time supernet steps, fast vs the naive reference, in one run.

For each size (the paper's C=16, N=5 and the ``cpu`` profile's) and implementation
(``IMPLEMENTATIONS``: the naive reference, the optimized supernet eager, compiled as the
search runs it, and under bf16 autocast), it times the weight step and the
alpha step (median and min of ``repeats`` steps after warm-up, each step kind in a fresh
process) on random CIFAR-shaped batches, counts the convolution and matmul FLOPs of the
reference step with ``torch.utils.flop_counter`` (``reference_step``), and reports images/s, GFLOP/s,
the fraction of an fp32 conv roofline measured by the same script on the same machine,
the step's peak memory growth and the ratio to the naive implementation.  The roofline
(``conv_roofline``) is per size and step kind: the reference step's own convolution calls,
each timed alone in its faster layout, in fp32 (bf16 rows: in bf16).  Ratios are
measured side by side; no absolute number is asserted anywhere.  ``--methods`` instead
times the search methods' schedules against DARTS (``time_methods``), ``--epoch`` one whole
search epoch per implementation (``time_epoch``).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from bench import device as device_mod
from bench.runs.checkpoints import build_supernet
from bench.search.config import PROFILES
from bench.search.steps import alpha_step, make_optimizers, weight_step


@dataclass
class Timing:
    implementation: str
    size: str
    step: str
    median_s: float
    min_s: float
    images_per_s: float
    gflops: float
    roofline_pct: float
    peak_mb: float
    """Memory growth of the step's process over what it held once the supernet was built."""
    first_s: float
    """The first step, compilation included for the compiled rows."""
    ratio: float = float("nan")


def conv3x3_best(device: torch.device, batch: int = 64, repeats: int = 10) -> float:
    """Best GFLOP/s of a plain conv3x3 forward+backward at the supernet's three widths, in
    either memory layout (a reference number: the widest conv's rate, which the 16-channel
    convs of a supernet cannot reach)."""
    best = 0.0
    for channels, side in ((16, 32), (32, 16), (64, 8)):
        for layout in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(batch, channels, side, side, device=device).contiguous(memory_format=layout)
            x.requires_grad_(True)
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1,
                                   bias=False).to(device, memory_format=layout)
            flops = 3 * 2 * batch * channels * channels * 9 * side * side  # forward + two backward convs
            seconds = _time(lambda: conv(x).sum().backward(), device, repeats)[0]
            best = max(best, flops / seconds / 1e9)
    return best


class _TensorShape(tuple):
    """The shape of a tensor argument in a recorded call (``_ConvCalls``), told apart from sizes."""


class _ConvCalls(TorchDispatchMode):
    """Counts the distinct convolution calls (forward, and backward with its gradient mask) made
    under it; a call's key is its function and its arguments, tensors as ``_TensorShape``."""

    def __init__(self):
        super().__init__()
        self.calls: dict[tuple, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default):
            key = (func, tuple(_TensorShape(a.shape) if isinstance(a, torch.Tensor) else
                               (tuple(a) if isinstance(a, list) else a) for a in args))
            self.calls[key] = self.calls.get(key, 0) + 1
        return func(*args, **(kwargs or {}))


def _replay(key: tuple, device: torch.device, layout: torch.memory_format,
            dtype: torch.dtype = torch.float32):
    """A closure making one recorded convolution call alone, on random tensors of its shapes
    (4-D ones in ``layout``) and ``dtype``."""
    func, args = key

    def argument(a):
        if isinstance(a, _TensorShape):
            t = torch.randn(a, device=device, dtype=dtype)
            return t.contiguous(memory_format=layout) if t.dim() == 4 else t
        return list(a) if isinstance(a, tuple) else a  # sizes, strides, paddings, gradient masks

    args = [argument(a) for a in args]
    return lambda: func(*args)


def reference_step(size: str, step: str, device: torch.device) -> tuple[dict[tuple, int], int]:
    """The work of one step kind at ``size``, as the naive reference does it: its distinct
    convolution calls with their counts (``_ConvCalls``) and its FLOPs (convolutions and
    matmuls, ``FlopCounterMode``).  The alpha step runs with the weights frozen, so that it
    counts what the alpha step needs (input gradients), not the weight gradients the reference
    computes and discards.  Every implementation's GFLOP/s is this count over its time: the
    same useful work for all, whatever extra the optimized ones spend (pooling as a depthwise
    convolution) or skip."""
    from bench.search.steps import frozen

    cfg, net = _build(size, "naive", device)
    w_opt, a_opt = make_optimizers(net, cfg)
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    recorder, counter = _ConvCalls(), FlopCounterMode(display=False)
    with recorder, counter, frozen(net.weight_parameters() if step == "alpha" else []):
        weight_step(net, w_opt, x, y, cfg.grad_clip) if step == "weight" else alpha_step(net, a_opt, x, y)
    return recorder.calls, counter.get_total_flops()


def conv_roofline(calls: dict[tuple, int], device: torch.device, repeats: int = 10,
                  dtype: torch.dtype = torch.float32) -> float:
    """The conv roofline of a step in GFLOP/s: each of its distinct convolution calls
    (``reference_step``) timed alone on random ``dtype`` tensors, in whichever memory layout
    runs it faster, and their FLOPs divided by their summed time.  What the step would reach
    if it were nothing but its convolutions, each at the speed this machine runs it alone."""
    flops = seconds = 0.0
    with torch.no_grad():
        for key, count in calls.items():
            runs = {layout: _replay(key, device, layout, dtype)
                    for layout in (torch.contiguous_format, torch.channels_last)}
            seconds += count * min(_time(run, device, repeats)[0] for run in runs.values())
            flops += count * _count_flops(runs[torch.contiguous_format])
    return flops / seconds / 1e9


def _time(fn, device: torch.device, repeats: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        device_mod.synchronize(device)
        began = time.perf_counter()
        fn()
        device_mod.synchronize(device)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples), min(samples)


def _count_flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


IMPLEMENTATIONS = {
    "naive": "the reference: every op computed, NCHW, unfused, eager",
    "eager": "the optimized supernet without torch.compile",
    "compiled": "the optimized supernet as the search runs it (torch.compile where the layout says so)",
    "bf16": "compiled under bf16 autocast (precision=bf16: other numbers, an option)",
}


def _implementations(device: torch.device, size: str, names=tuple(IMPLEMENTATIONS)) -> list[str]:
    """``names`` less "compiled" where the layout at ``size`` does not compile (it would repeat "eager")."""
    compiles = device_mod.supernet_layout(device, PROFILES[size].C).compile
    return [i for i in names if i != "compiled" or compiles]


def _build(size: str, implementation: str, device: torch.device):
    """(config, train-mode supernet) of one of ``IMPLEMENTATIONS`` at ``size``."""
    cfg = PROFILES[size].replace(implementation="naive" if implementation == "naive" else "fast",
                                 precision="bf16" if implementation == "bf16" else "fp32")
    return cfg, build_supernet(cfg, 0, device, compile=implementation in ("compiled", "bf16")).train()


def _random_search_data(weight: int, alpha: int, device: torch.device, rng: np.random.Generator):
    """A ``SearchData`` of random CIFAR-shaped uint8 images and labels (``weight`` + ``alpha`` of them)."""
    from bench import data as data_mod

    def fake(n: int):
        return data_mod.to_device(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                                  rng.integers(0, 10, n), device)

    return data_mod.SearchData(fake(weight), fake(alpha), None, np.arange(weight), np.arange(alpha))


def time_step(size: str, implementation: str, step: str, device: torch.device, repeats: int,
              flops: int, roofline: float) -> Timing:
    """One step kind of one implementation (``IMPLEMENTATIONS``) at one size; run it in a fresh
    process (``_fresh_process``) so that its peak memory and its compilation are its own.
    ``flops``, ``roofline``: the step's reference work and conv roofline (``reference_step``)."""
    cfg, net = _build(size, implementation, device)
    w_opt, a_opt = make_optimizers(net, cfg)
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    fn = {"weight": lambda: weight_step(net, w_opt, x, y, cfg.grad_clip),
          "alpha": lambda: alpha_step(net, a_opt, x, y)}[step]
    device_mod.peak_memory_reset(device)
    start_mb = device_mod.peak_memory_mb(device)
    began = time.perf_counter()
    fn()
    device_mod.synchronize(device)
    first = time.perf_counter() - began
    median, best = _time(fn, device, repeats)
    peak = device_mod.peak_memory_mb(device) - start_mb
    gflops = flops / median / 1e9
    return Timing(implementation, size, step, median, best, cfg.batch_size / median, gflops,
                  100 * gflops / roofline, peak, first)


def _fresh_process(fn, *args):
    """``fn(*args)`` in a new spawned process, with this process's thread count (for peak memory
    and timings that nothing before them has touched)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_with_threads, torch.get_num_threads(), fn, *args).result()


def _with_threads(threads: int, fn, *args):
    device_mod.keep_freed_host_memory()  # as every bench command runs (bench.cli.main)
    torch.set_num_threads(threads)
    return fn(*args)


def run(repeats: int = 10, sizes: tuple[str, ...] = ("paper", "cpu"),
        device: str | None = None) -> list[Timing]:
    dev = device_mod.choose(device)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"best plain fp32 conv3x3 forward+backward {conv3x3_best(dev):.1f} GFLOP/s; "
          f"each step timed in a fresh process")
    for name, meaning in IMPLEMENTATIONS.items():
        print(f"  {name:8}: {meaning}")
    rows: list[Timing] = []
    for size in sizes:
        cfg = PROFILES[size]
        layout = device_mod.supernet_layout(dev, cfg.C)
        work = {step: reference_step(size, step, dev) for step in ("weight", "alpha")}
        roofline = {(step, dtype): conv_roofline(calls, dev, repeats, dtype)
                    for step, (calls, _) in work.items() for dtype in (torch.float32, torch.bfloat16)}
        print(f"{size}: C={cfg.C}, N={cfg.N}, batch {cfg.batch_size}; optimized supernet: {layout.name}; "
              f"reference work weight {work['weight'][1] / 1e9:.1f}, "
              f"alpha {work['alpha'][1] / 1e9:.1f} GFLOP; conv roofline (GFLOP/s) "
              f"fp32 weight {roofline['weight', torch.float32]:.1f}, "
              f"alpha {roofline['alpha', torch.float32]:.1f}; "
              f"bf16 weight {roofline['weight', torch.bfloat16]:.1f}, "
              f"alpha {roofline['alpha', torch.bfloat16]:.1f}")
        timed = {(impl, step): _fresh_process(time_step, size, impl, step, dev, repeats, work[step][1],
                                              roofline[step, (torch.bfloat16 if impl == "bf16"
                                                              else torch.float32)])
                 for impl in _implementations(dev, size) for step in ("weight", "alpha")}
        for (impl, step), timing in timed.items():
            timing.ratio = timed[("naive", step)].median_s / timing.median_s
        rows += list(timed.values())
    print(format_table(rows))
    return rows


def format_table(rows: list[Timing]) -> str:
    header = (f"{'impl':8} {'size':6} {'step':6} {'median s':>9} {'min s':>8} {'img/s':>8} {'GFLOP/s':>8} "
              f"{'%roof':>6} {'peak +MB':>8} {'first s':>8} {'x naive':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.implementation:8} {r.size:6} {r.step:6} {r.median_s:9.4f} {r.min_s:8.4f} "
                     f"{r.images_per_s:8.1f} {r.gflops:8.1f} {r.roofline_pct:6.1f} {r.peak_mb:8.0f} "
                     f"{r.first_s:8.1f} {r.ratio:8.2f}")
    return "\n".join(lines)


def time_epoch(size: str = "cpu", device: str | None = None, steps: int | None = None) -> dict[str, dict]:
    """Seconds of one whole DARTS search epoch (``train_epoch``: every weight step, its alpha
    step and the alpha batches' loss and accuracy) at ``size`` for the naive reference, the
    eager optimized supernet and, where the layout compiles, the compiled one, each in a fresh
    process after an untimed two-step epoch (which compiles what the search compiles).
    ``steps`` cuts the epoch (default: the profile's whole weight half)."""
    implementations = _implementations(device_mod.choose(device), size, ("naive", "eager", "compiled"))
    return {impl: _fresh_process(_time_epoch, size, impl, device, steps) for impl in implementations}


def _time_epoch(size: str, implementation: str, device: str | None, steps: int | None) -> dict:
    from bench.search.loop import train_epoch

    dev = device_mod.choose(device)
    cfg, net = _build(size, implementation, dev)
    rng = np.random.default_rng(0)
    n = cfg.weight_size if steps is None else steps * cfg.batch_size
    data = _random_search_data(n, min(n, cfg.alpha_size), dev, rng)
    warm = _random_search_data(2 * cfg.batch_size, 2 * cfg.batch_size, dev, rng)
    w_opt, a_opt = make_optimizers(net, cfg)
    began = time.perf_counter()
    train_epoch(net, w_opt, a_opt, cfg, warm, 0, 0, progress=False)
    device_mod.synchronize(dev)
    warm_up = time.perf_counter() - began
    began = time.perf_counter()
    stats = train_epoch(net, w_opt, a_opt, cfg, data, 0, 0, progress=False)
    device_mod.synchronize(dev)
    return {"seconds": time.perf_counter() - began, "steps": stats["steps"], "warm_up_s": warm_up}


def format_epochs(size: str, timed: dict[str, dict]) -> str:
    base = timed.get("naive", {}).get("seconds", float("nan"))
    lines = [f"{'impl':8} {'size':6} {'steps':>6} {'epoch s':>9} {'s/step pair':>11} {'x naive':>8} "
             f"{'warm-up s':>9}"]
    lines.append("-" * len(lines[0]))
    for impl, t in timed.items():
        lines.append(f"{impl:8} {size:6} {t['steps']:6d} {t['seconds']:9.1f} "
                     f"{t['seconds'] / t['steps']:11.4f} {base / t['seconds']:8.2f} {t['warm_up_s']:9.1f}")
    return "\n".join(lines)


@dataclass
class MethodStage:
    """Step-pair timing of one method in one state of its schedule (the ops each edge still computes)."""

    method: str
    epochs: list[int]
    ops_per_edge: str
    alpha_trains: bool
    median_s: float
    min_s: float


def time_methods(size: str = "cpu", device: str | None = None, steps: int = 5,
                 methods: tuple[str, ...] | None = None) -> tuple[list[MethodStage], dict[str, dict]]:
    """Wall time and peak memory of every search method against DARTS's, side by side.

    Each method runs in a fresh process (so that neither time nor memory carries over from
    the one before), one after the other, with this process's thread count.  It runs its
    whole epoch schedule at ``size`` through the real search code (``train_epoch`` with the
    method's hooks: pruning, warm-up, frozen alpha, transit cells; compiled where the search
    compiles, each new schedule state first getting an untimed epoch whose seconds are
    reported as the warm-up), every epoch cut to
    ``steps`` weight+alpha step pairs on random CIFAR-shaped data.  Epochs in the same state
    (ops alive per edge, alpha training or not) are pooled; the predicted search time is the
    sum over epochs of the state's median seconds per step pair times the profile's steps per
    epoch (per-epoch evaluation left out: it is the same for every method).  Returns the
    stages and, per method, the predicted seconds, the peak memory (``device.peak_memory_mb``:
    on CPU the process's RSS high-water mark) and its growth over the memory in use before
    the supernet was built.
    """
    from bench.search import methods as methods_mod

    stages: list[MethodStage] = []
    predicted: dict[str, dict] = {}
    for name in methods or tuple(methods_mod.METHODS):
        found, summary = _fresh_process(_time_method, name, size, device, steps)
        stages += found
        predicted[name] = summary
    return stages, predicted


def _time_method(name: str, size: str, device: str | None, steps: int) -> tuple[list, dict]:
    """One method's schedule in this (fresh) process; see ``time_methods``."""
    from bench.search import config, methods as methods_mod
    from bench.search.loop import train_epoch

    dev = device_mod.choose(device)
    device_mod.peak_memory_reset(dev)
    start_mb = device_mod.peak_memory_mb(dev)
    rng = np.random.default_rng(0)
    cfg = config.resolve(size, method=name)
    n = steps * cfg.batch_size
    fake = _random_search_data(n, n, dev, rng)
    net = build_supernet(cfg, 0, dev, compile=True)
    method = methods_mod.get(cfg, 0)
    method.setup(net)
    w_opt, a_opt = make_optimizers(net, cfg)
    by_state: dict[tuple, list] = {}
    warm_up_s = 0.0
    for epoch in range(cfg.epochs):
        state = ("/".join(str(int(k)) for k in net.op_mask.sum(1).tolist()), method.alpha_trains(epoch))
        method.start_epoch(net, epoch)
        if state not in by_state:  # an untimed epoch without the method's hooks: compiles the state's graphs
            began = time.perf_counter()
            warm_cfg = cfg.replace(freeze_alpha=not state[1])
            train_epoch(net, w_opt, a_opt, warm_cfg, fake, 0, epoch, progress=False,
                        method=methods_mod.Method(warm_cfg, 0))
            warm_up_s += time.perf_counter() - began
        device_mod.synchronize(dev)
        began = time.perf_counter()
        train_epoch(net, w_opt, a_opt, cfg, fake, 0, epoch, progress=False, method=method)
        device_mod.synchronize(dev)
        by_state.setdefault(state, []).append((epoch + 1, (time.perf_counter() - began) / steps))
        _, reset = method.end_epoch(net, epoch)
        if reset:
            _, a_opt = make_optimizers(net, cfg)
    full_steps = math.ceil(cfg.weight_size / cfg.batch_size)
    stages, total = [], 0.0
    for (ops, trains), samples in by_state.items():
        seconds = [s for _, s in samples]
        stages.append(MethodStage(name, [e for e, _ in samples], ops, trains, statistics.median(seconds),
                                  min(seconds)))
        total += stages[-1].median_s * full_steps * len(samples)
    peak = device_mod.peak_memory_mb(dev)
    return stages, {"seconds": total, "peak_mb": peak, "growth_mb": peak - start_mb, "warm_up_s": warm_up_s}


def format_methods(stages: list[MethodStage], predicted: dict[str, dict], baseline: str = "darts") -> str:
    header = f"{'method':16} {'epochs':>9} {'ops/edge':>12} {'alpha':>5} {'median s':>9} {'min s':>7}"
    lines = [header, "-" * len(header)]
    for s in stages:
        span = f"{s.epochs[0]}-{s.epochs[-1]}" if len(s.epochs) > 1 else str(s.epochs[0])
        lines.append(f"{s.method:16} {span:>9} {s.ops_per_edge:>12} {'yes' if s.alpha_trains else 'no':>5} "
                     f"{s.median_s:9.4f} {s.min_s:7.4f}")
    lines += ["", f"{'method':16} {'predicted search s':>18} {'x ' + baseline + ' time':>14} "
                  f"{'peak MB':>8} {'+MB':>6} {'warm-up s':>9}"]
    base = predicted.get(baseline, {}).get("seconds", float("nan"))
    for name, out in predicted.items():
        lines.append(f"{name:16} {out['seconds']:18.0f} {out['seconds'] / base:14.2f} {out['peak_mb']:8.0f} "
                     f"{out['growth_mb']:6.0f} {out['warm_up_s']:9.1f}")
    lines.append("warm-up s: the untimed epochs that start each schedule state "
                 "(compilation, where the search compiles)")
    return "\n".join(lines)
