"""The one place where the compute device is chosen.

``BENCH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) or ``--device`` overrides; the
default is the first CUDA device when one is visible, else the CPU.  Nothing else in
the harness names a device.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from bench.errors import UserError


HOST = torch.device("cpu")
"""Host memory: where files are deserialised before they move to the compute device."""


def choose(requested: str | None = None) -> torch.device:
    """Resolve the device: argument > $BENCH_DEVICE > CUDA if available > CPU.

    Only devices that are present here are accepted: ``cpu``, ``cuda``/``cuda:N`` with a visible
    GPU N, ``mps`` where PyTorch has it; anything else (``meta``, ``xla``, a typo) is a ``UserError``
    that names where the value came from."""
    source = "--device" if requested else "BENCH_DEVICE"
    name = requested or os.environ.get("BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"{source} {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{source} {name!r} was asked for but CUDA is not available here; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise UserError(f"{source} {name!r}: this machine has {count} CUDA device(s), cuda:0 to "
                            f"cuda:{count - 1}")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{source} {name!r} was asked for but MPS is not available here; use cpu")
    elif device.type != "cpu":
        raise UserError(f"{source} {name!r} is not supported; use cpu, cuda or cuda:N (or mps on a Mac)")
    return device


_FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass(frozen=True)
class Layout:
    """How the fast supernet lays out its work (``Supernet.use_layout``)."""

    memory_format: torch.memory_format
    fuse_convs: bool
    """Run the same-kind convs that read one node as one wide convolution (``supernet.node_convs``)."""
    compile: bool = False
    """Send the search's training forwards (and so their backwards) through ``torch.compile``."""

    @property
    def name(self) -> str:
        fmt = "channels_last" if self.memory_format == torch.channels_last else "NCHW"
        return (f"{fmt}, {'fused' if self.fuse_convs else 'separate'} node convs"
                f"{', compiled' if self.compile else ''}")


def supernet_layout(device: torch.device, channels: int) -> Layout:
    """The fast supernet's layout for a first-stage width ``channels`` on ``device``.

    Memory format: ``channels_last`` on CUDA (cuDNN's native layout for small convs and
    autocast) and on the CPU from C=16 up; NCHW below, where oneDNN's channels_last kernels
    lose.  Conv fusion: on CUDA (fewer kernel launches; not measured here, no GPU) and with
    NCHW on the CPU; not with channels_last on the CPU.  Measured with torch 2.13 on 2 cores,
    batch 64, seconds per weight / alpha step (median of 8-15):

    - C=16, N=5: NCHW 1.055 / 0.937, channels_last 0.891 / 0.812, channels_last fused
      0.917 / 0.866;
    - C=8, N=2: NCHW 0.236 / 0.201, NCHW fused 0.221 / 0.193, channels_last 0.310 / 0.256.

    Compilation (``torch.compile``, inductor: one C++/OpenMP or Triton kernel for each chain of
    batch-norm, ReLU and weighted-sum ops, forward and backward): from C=8 up, where a
    compiler is found (a C++ compiler on the CPU, Triton on CUDA).  Measured at C=8, N=2:
    weight / alpha step 0.218 / 0.193 s eager, 0.131 / 0.127 s compiled; at C=16, N=5
    (channels_last) 0.83 / 0.76 s eager, 0.71-0.85 / 0.64-0.67 s compiled.  The first compile
    of an op pattern costs about 80 s at C=8 and 140 s at C=16 on 2 cores (10 s once inductor's
    on-disk cache holds it), so smaller supernets (the smoke profile, tests) run eager.

    ``BENCH_MEMORY_FORMAT=channels_last|contiguous``, ``BENCH_FUSE_CONVS=0|1`` and
    ``BENCH_COMPILE=0|1`` override.  Layouts agree to float tolerance, not bitwise; one
    machine and config always gets the same layout, so CPU runs stay deterministic.
    """
    requested = os.environ.get("BENCH_MEMORY_FORMAT")
    if requested and requested not in _FORMATS:
        raise UserError(f"BENCH_MEMORY_FORMAT must be one of {', '.join(_FORMATS)}, not {requested!r}")
    if requested:
        memory_format = _FORMATS[requested]
    else:
        memory_format = (torch.channels_last if device.type == "cuda" or channels >= 16
                         else torch.contiguous_format)
    fuse = os.environ.get("BENCH_FUSE_CONVS")
    if fuse not in (None, "", "0", "1"):
        raise UserError(f"BENCH_FUSE_CONVS must be 0 or 1, not {fuse!r}")
    if fuse:
        fuse_convs = fuse == "1"
    else:
        fuse_convs = device.type == "cuda" or memory_format == torch.contiguous_format
    compile_ = os.environ.get("BENCH_COMPILE")
    if compile_ not in (None, "", "0", "1"):
        raise UserError(f"BENCH_COMPILE must be 0 or 1, not {compile_!r}")
    compile_ = compile_ == "1" if compile_ else channels >= 8 and compiler_available(device)
    return Layout(memory_format, fuse_convs, compile_)


def masks_together(device: torch.device) -> int:
    """How many DARTS-PT masks one evaluation forward carries by default
    (``bench.nets.evaluate.evaluate_each``; the criterion's ``masks_together`` option overrides).

    4 (one edge's ops) on CUDA, where the 4x batch fills the GPU and saves kernel launches
    (not measured here: no GPU); 1 on the CPU, where a bigger batch is slower per image:
    no-grad train-mode forward, 2 cores, batch 256 vs 1024: 186 vs 111 images/s at C=16,
    N=5, 621 vs 333 at C=8, N=2."""
    return 4 if device.type == "cuda" else 1


def compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile``'s default backend can build kernels for ``device`` here."""
    import importlib.util
    import shutil

    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    if device.type != "cpu":
        return False
    return any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c)


def autocast(device: torch.device, precision: str):
    """The context of a supernet forward: nothing for ``fp32``; bf16 autocast for ``bf16``
    (convolutions and matmuls in bfloat16, reductions such as softmax and the loss in fp32).
    Meant for GPUs with bf16 units; on a CPU without them it runs, slower."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for timing only; never inside a training step)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_PROC_STATUS = "/proc/self/status"


def peak_memory_reset(device: torch.device) -> None:
    """Start a new peak: the CUDA allocator's, or on Linux the process's RSS high-water mark
    (``/proc/self/clear_refs``), so that a run in a reused worker process (joblib, Dask)
    reports its own peak, not the largest of the jobs before it."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux: peak_memory_mb falls back to the process's max RSS


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB since the last ``peak_memory_reset``: the CUDA allocator's peak, or the
    process's RSS high-water mark on CPU (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open(_PROC_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_deterministic(device: torch.device) -> None:
    """Deterministic kernels where they exist cheaply (the CPU); CUDA runs stay fast and
    are reproducible only up to kernel non-determinism."""
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)


def keep_freed_host_memory(threshold_bytes: int = 1 << 30) -> None:
    """Let glibc keep freed host buffers instead of handing each one back to the OS.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also pins the
    mmap threshold at 128 KiB: every activation of a CPU step becomes an mmap/munmap pair
    and the step runs at half speed (a smoke-profile job in a Dask worker: 29.8 s before,
    14.6 s after).  glibc's own defaults lose too: the heap above its trim threshold goes back
    to the OS after every step and the next step faults it in again (paper size, compiled,
    2 cores: weight step 0.745 -> 0.623 s, alpha step 0.564 -> 0.458 s; the naive and eager
    steps within noise), so every ``bench`` command calls this first (``bench.cli.main``, the
    sweep's workers, ``perf``'s fresh processes).  Sets ``M_TRIM_THRESHOLD`` and
    ``M_MMAP_THRESHOLD`` through ``mallopt``; does nothing where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_trim_threshold, threshold_bytes)
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest dynamic mmap threshold (64-bit)
