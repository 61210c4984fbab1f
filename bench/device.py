"""The one place where the compute device is chosen.

``BENCH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) or ``--device`` overrides; the
default is the first CUDA device when one is visible, else the CPU.  Nothing else in
the harness names a device.
"""
from __future__ import annotations

import os

import torch

from bench.errors import UserError


HOST = torch.device("cpu")
"""Host memory: where files are deserialised before they move to the compute device."""


def choose(requested: str | None = None) -> torch.device:
    """Resolve the device: argument > $BENCH_DEVICE > CUDA if available > CPU."""
    name = requested or os.environ.get("BENCH_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"Unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"Device {name!r} was asked for but CUDA is not available here; use --device cpu")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels (for timing only; never inside a training step)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated memory in MiB: CUDA allocator peak, or the process's max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_deterministic(device: torch.device) -> None:
    """Deterministic kernels where they exist cheaply (the CPU); CUDA runs stay fast and
    are reproducible only up to kernel non-determinism."""
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)
