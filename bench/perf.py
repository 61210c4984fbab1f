"""``python -m bench perf``: time supernet steps, fast vs the naive reference, in one run.

For each size (the paper's C=16, N=5 and the ``cpu`` profile's) and implementation, it
times the weight step and the alpha step (median and min of ``repeats`` steps after
warm-up) on random CIFAR-shaped batches, counts the convolution and matmul FLOPs of one
step with ``torch.utils.flop_counter``, and reports images/s, GFLOP/s, the fraction of a
conv3x3 forward+backward roofline measured by the same script on the same machine, and
the ratio to the naive implementation.  Ratios are measured side by side; no absolute
number is asserted anywhere.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import device as device_mod
from bench.config import PROFILES, SearchConfig
from bench.search import alpha_step, make_optimizers, weight_step
from bench.supernet import Supernet


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
    ratio: float = float("nan")


def conv_roofline(device: torch.device, batch: int = 64, repeats: int = 10) -> float:
    """Best GFLOP/s of a plain conv3x3 forward+backward at the supernet's three widths."""
    best = 0.0
    for channels, side in ((16, 32), (32, 16), (64, 8)):
        x = torch.randn(batch, channels, side, side, device=device, requires_grad=True)
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
        flops = 3 * 2 * batch * channels * channels * 9 * side * side  # forward + two backward convs
        seconds = _time(lambda: conv(x).sum().backward(), device, repeats)[0]
        best = max(best, flops / seconds / 1e9)
    return best


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


def time_steps(cfg: SearchConfig, size: str, implementation: str, device: torch.device, repeats: int,
               roofline: float) -> list[Timing]:
    torch.manual_seed(0)
    net = Supernet(C=cfg.C, N=cfg.N, implementation=implementation).to(device).train()
    w_opt, a_opt = make_optimizers(net, cfg)
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (cfg.batch_size,), device=device)
    steps = {"weight": lambda: weight_step(net, w_opt, x, y, cfg.grad_clip),
             "alpha": lambda: alpha_step(net, a_opt, x, y)}
    out = []
    for step, fn in steps.items():
        flops = _count_flops(fn)
        median, best = _time(fn, device, repeats)
        gflops = flops / median / 1e9
        out.append(Timing(implementation, size, step, median, best, cfg.batch_size / median, gflops,
                          100 * gflops / roofline))
    return out


def run(repeats: int = 10, sizes: tuple[str, ...] = ("paper", "cpu"), device: str | None = None) -> list[Timing]:
    dev = device_mod.choose(device)
    roofline = conv_roofline(dev)
    print(f"device {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"conv3x3 roofline {roofline:.1f} GFLOP/s")
    rows: list[Timing] = []
    for size in sizes:
        cfg = PROFILES[size]
        naive = time_steps(cfg, size, "naive", dev, repeats, roofline)
        fast = time_steps(cfg, size, "fast", dev, repeats, roofline)
        for n, f in zip(naive, fast):
            n.ratio = 1.0
            f.ratio = n.median_s / f.median_s
        rows += naive + fast
    print(format_table(rows))
    return rows


def format_table(rows: list[Timing]) -> str:
    header = f"{'impl':6} {'size':6} {'step':6} {'median s':>9} {'min s':>8} {'img/s':>8} {'GFLOP/s':>8} {'%roof':>6} {'x naive':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.implementation:6} {r.size:6} {r.step:6} {r.median_s:9.4f} {r.min_s:8.4f} "
                     f"{r.images_per_s:8.1f} {r.gflops:8.1f} {r.roofline_pct:6.1f} {r.ratio:8.2f}")
    return "\n".join(lines)
