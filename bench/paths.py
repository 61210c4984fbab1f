"""Where the harness finds its inputs and writes its outputs (one place for every default).

Lookup order for the ground truth: ``--benchmark FILE`` > ``$BENCH_BENCHMARK`` >
``<shared data>/nas-bench-201/nb201_accuracy.csv``.  The shared data folder is
``$BENCH_SHARED_DATA`` or ``../shared/data`` beside the project root.  CIFAR-10 is read
from ``--data-dir`` > ``$BENCH_DATA_DIR`` > ``<project>/data`` (holding
``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``).  Results go to
``$BENCH_RESULTS`` or ``<project>/results``; an empty variable counts as unset.

An experiment name is one path component of a safe alphabet (``experiment_name``), so a
run folder never lands outside the results root.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from bench.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


def shared_data_dir() -> Path:
    return _env_path("BENCH_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")


def default_benchmark_file() -> Path:
    return _env_path("BENCH_BENCHMARK", shared_data_dir() / "nas-bench-201" / "nb201_accuracy.csv")


def default_data_dir() -> Path:
    return _env_path("BENCH_DATA_DIR", PROJECT_ROOT / "data")


def results_dir() -> Path:
    return _env_path("BENCH_RESULTS", PROJECT_ROOT / "results")


def writable_results_dir() -> Path:
    """The results root, checked as a place to write (``writable_dir``)."""
    what = "BENCH_RESULTS" if os.environ.get("BENCH_RESULTS") else "results folder"
    return writable_dir(results_dir(), what)


def cifar_builder() -> Path:
    """The script that materialises CIFAR-10 from the shared JPEG copy (this workplace only)."""
    return shared_data_dir() / "cifar10" / "build.py"


def experiment_name(name: object, what: str = "experiment name") -> str:
    """``name`` if it is one folder name of letters, digits, ``.``, ``_``, ``-`` (not starting with
    ``.`` or ``-``, at most 100 characters), else a ``UserError``: names never leave the results root."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(f"{what} {name!r} must be one folder name of letters, digits, '.', '_' and '-' that "
                        f"starts with a letter or digit (at most 100 characters), e.g. cpu-study")
    return name


def writable_dir(path: str | Path, what: str) -> Path:
    """``path`` if it is a folder this process can write into, or one it can create (every existing
    part of it a folder, the nearest existing one writable); else a ``UserError`` naming ``what``."""
    path = Path(path)
    existing = path
    while not existing.exists():
        if existing.is_symlink():
            raise UserError(f"{what} {path}: {existing} is a dangling link; fix it or choose another folder")
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: {existing} is not writable; choose another folder or fix its "
                        f"permissions")
    return path


def output_file(path: str | Path, what: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """An output file the user named: its folder must exist (nothing is created around it), it must
    not be a folder, and it must not be one of ``inputs``."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; name a file")
    if not path.parent.is_dir():
        raise UserError(f"{what} {path}: the folder {path.parent} does not exist; create it first")
    if any(_same(path, source) for source in inputs):
        raise UserError(f"{what} {path} is an input of this command; name another file")
    writable_dir(path.parent, what)
    return path


def output_dir(path: str | Path, what: str, inputs: tuple[str | Path, ...] = ()) -> Path:
    """An output folder the user named: it may be created, but not its parent; it must not be a file
    nor one of ``inputs``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; name a folder")
    if not path.parent.is_dir():
        raise UserError(f"{what} {path}: the folder {path.parent} does not exist; create it first")
    if any(_same(path, source) for source in inputs):
        raise UserError(f"{what} {path} is an input of this command; name another folder")
    writable_dir(path, what)
    return path


def _same(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()
