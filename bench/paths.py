"""Where the harness finds its inputs and writes its outputs (one place for every default).

Lookup order for the ground truth: ``--benchmark FILE`` > ``$BENCH_BENCHMARK`` >
``<shared data>/nas-bench-201/nb201_accuracy.csv``.  The shared data folder is
``$BENCH_SHARED_DATA`` or ``../shared/data`` beside the project root.  CIFAR-10 is read
from ``--data-dir`` > ``$BENCH_DATA_DIR`` > ``<project>/data`` (holding
``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``).  Results go to
``$BENCH_RESULTS`` or ``<project>/results``.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    return Path(os.environ.get("BENCH_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def default_benchmark_file() -> Path:
    env = os.environ.get("BENCH_BENCHMARK")
    return Path(env) if env else shared_data_dir() / "nas-bench-201" / "nb201_accuracy.csv"


def default_data_dir() -> Path:
    return Path(os.environ.get("BENCH_DATA_DIR", PROJECT_ROOT / "data"))


def results_dir() -> Path:
    return Path(os.environ.get("BENCH_RESULTS", PROJECT_ROOT / "results"))


def cifar_builder() -> Path:
    """The script that materialises CIFAR-10 from the shared JPEG copy (this workplace only)."""
    return shared_data_dir() / "cifar10" / "build.py"
