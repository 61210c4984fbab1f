"""The run store: ``results/<experiment>/<run-id>/`` with config, per-epoch log, checkpoints, marker.

Layout of a run folder:

- ``config.json``: the resolved ``SearchConfig``, seed, profile and provenance (benchmark
  source and checksum, torch version, device, git commit);
- ``epochs.jsonl``: one JSON record per finished epoch (losses, accuracies, alpha, the
  magnitude cell and its ground truth, the checkpoint file and its SHA-256);
- ``checkpoints/epoch-NNNN.pt``: every ``checkpoint_every``-th epoch plus the last;
- ``done``: written last, with the final cell; a run with ``done`` is complete;
- ``failed``: the traceback of a run that raised (removed when it completes).

The run id is derived from the config and seed, so the same request maps to the same folder.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from bench.atomic import read_json, read_jsonl, rewrite_jsonl, append_jsonl, sha256_file, write_atomic, write_json
from bench.config import SearchConfig
from bench.errors import UserError
from bench.paths import PROJECT_ROOT, results_dir


def run_id(cfg: SearchConfig, seed: int, profile: str) -> str:
    digest = json.dumps({"config": cfg.identity(), "seed": seed}, sort_keys=True)
    import hashlib

    return f"{cfg.method}-{profile}-s{seed}-{hashlib.sha256(digest.encode()).hexdigest()[:8]}"


def _identity(config: dict) -> dict | None:
    """``SearchConfig.identity`` of a stored config (None if it no longer parses)."""
    try:
        return SearchConfig(**config).identity()
    except (TypeError, UserError):
        return None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Run:
    """One run folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, experiment: str, cfg: SearchConfig, seed: int, profile: str) -> "Run":
        return cls(results_dir() / experiment / run_id(cfg, seed, profile))

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        run = cls(path)
        if not (run.path / "config.json").exists():
            raise UserError(f"{run.path} is not a run folder (no config.json); give results/<experiment>/<run-id>")
        return run

    # -- files ----------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def epochs_file(self) -> Path:
        return self.path / "epochs.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_file(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch-{epoch:04d}.pt"

    @property
    def is_done(self) -> bool:
        return (self.path / "done").exists()

    def meta(self) -> dict:
        return read_json(self.config_file)

    def config(self) -> SearchConfig:
        return SearchConfig(**self.meta()["config"])

    def epochs(self) -> list[dict]:
        return read_jsonl(self.epochs_file)

    # -- writing ----------------------------------------------------------------------
    def start(self, meta: dict) -> None:
        """Create the folder and write config.json; an existing one must describe the same run."""
        if self.config_file.exists():
            old = self.meta()
            if _identity(old["config"]) != _identity(meta["config"]) or old["seed"] != meta["seed"]:
                raise UserError(f"{self.path} holds a different run (its config.json differs); choose another "
                                f"experiment name or remove the folder")
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.config_file, meta)

    def check_inputs(self, benchmark_sha256: str | None = None, train_sha256: str | None = None) -> None:
        """Refuse to go on with a benchmark table or training set other than the run's own."""
        if not self.config_file.exists():
            return
        meta = self.meta()
        recorded = meta.get("benchmark", {}).get("sha256")
        if benchmark_sha256 and recorded and recorded != benchmark_sha256:
            raise UserError(f"The benchmark table changed since {self.path} was made (SHA-256 {benchmark_sha256[:12]} "
                            f"vs {recorded[:12]} recorded from {meta['benchmark'].get('source')}); pass --benchmark "
                            f"with the original table")
        recorded = meta.get("data", {}).get("train_sha256")
        if train_sha256 and recorded and recorded != train_sha256:
            raise UserError(f"The CIFAR-10 training set changed since {self.path} was made (SHA-256 "
                            f"{train_sha256[:12]} vs {recorded[:12]}); point --data-dir at the original copy")

    def save_checkpoint(self, epoch: int, state: dict, keep_every: int) -> dict:
        """Write a checkpoint atomically, prune the previous one if it is not a k-th; return its record."""
        path = self.checkpoint_file(epoch)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(path, buffer.getvalue())
        previous = sorted(self.checkpoint_dir.glob("epoch-*.pt"))
        for old in previous:
            number = int(old.stem.split("-")[1])
            if number < epoch and number % keep_every != 0:
                old.unlink(missing_ok=True)
        return {"file": str(path.relative_to(self.path)), "sha256": sha256_file(path)}

    def log_epoch(self, record: dict) -> None:
        append_jsonl(self.epochs_file, record)

    def mark_done(self, info: dict) -> None:
        write_json(self.path / "done", {**info, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        (self.path / "failed").unlink(missing_ok=True)

    def mark_failed(self, error: BaseException) -> None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        write_atomic(self.path / "failed", text.encode())

    # -- resuming -----------------------------------------------------------------------
    def last_good_checkpoint(self) -> tuple[int, Path] | None:
        """The newest checkpoint whose SHA-256 matches its epoch record (a corrupt one is skipped)."""
        records = {r["epoch"]: r for r in self.epochs() if r.get("checkpoint")}
        for epoch in sorted(records, reverse=True):
            path = self.path / records[epoch]["checkpoint"]["file"]
            if path.exists() and sha256_file(path) == records[epoch]["checkpoint"]["sha256"]:
                return epoch, path
        return None

    def truncate_after(self, epoch: int) -> None:
        """Drop epoch records after ``epoch`` (and a partial last line) before resuming."""
        rewrite_jsonl(self.epochs_file, [r for r in self.epochs() if r["epoch"] <= epoch])


@contextmanager
def run_lock(path: Path, name: str = ".lock") -> Iterator[bool]:
    """Hold a lock file of the run folder for the duration; yields False if another live
    process holds it.  ``fcntl.flock``: the kernel releases it when its holder dies, so a
    stale lock of a killed process is taken over without any clean-up."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / name, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} {os.uname().nodename}\n")
        handle.flush()
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def is_locked(path: Path, name: str = ".lock") -> bool:
    path = Path(path)
    if not (path / name).exists():
        return False
    with open(path / name, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def busy_error(path: Path) -> UserError:
    """The message for a run folder whose lock another live process holds."""
    return UserError(f"{path} is being written by another process (see {Path(path) / '.lock'}); wait for it to "
                     f"finish, or stop it, then rerun with --resume")


def load_checkpoint(path: str | Path, map_location: torch.device | None = None) -> dict:
    try:
        from bench.device import HOST

        return torch.load(path, map_location=map_location or HOST, weights_only=False)
    except Exception as err:
        raise UserError(f"Checkpoint {path} could not be read ({type(err).__name__}: {err}); it is corrupt. "
                        f"Delete it to resume from the one before.") from None


def environment() -> dict:
    return {"torch": torch.__version__, "commit": git_commit(), "host_cpus": os.cpu_count()}
