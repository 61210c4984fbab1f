"""The run store: ``results/<experiment>/<run-id>/`` with config, per-epoch log, checkpoints, marker.

Layout of a run folder:

- ``config.json``: the resolved ``SearchConfig``, seed, profile and provenance (benchmark
  source and checksum, torch version, device, the git commit that created the run);
- ``epochs.jsonl``: one JSON record per finished epoch (losses, accuracies, alpha, mixing
  weights, the derived cell, the checkpoint file and its SHA-256, the commit that computed it:
  a run resumed by other code says so epoch by epoch);
- ``checkpoints/epoch-NNNN.pt``: every ``checkpoint_every``-th epoch plus the last;
- ``done``: written last, with the final cell and the commit that finished the search; a run
  with ``done`` is complete;
- ``failed``: the traceback of a run that raised (removed when it completes).

The run id is derived from the config and seed, so the same request maps to the same folder.
"""
from __future__ import annotations

import fcntl
import functools
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

from bench.atomic import (read_json, read_jsonl, rewrite_jsonl, append_jsonl, sha256_file, write_atomic,
                          write_json)
from bench.errors import UserError
from bench.paths import PROJECT_ROOT, results_dir
from bench.search.config import SearchConfig


def run_id(cfg: SearchConfig, seed: int, profile: str) -> str:
    digest = json.dumps({"config": cfg.identity(), "seed": seed}, sort_keys=True)
    import hashlib

    return f"{cfg.method}-{profile}-s{seed}-{hashlib.sha256(digest.encode()).hexdigest()[:8]}"


def _identity(config: dict) -> dict | None:
    """``SearchConfig.identity`` of a stored config (None if it no longer parses)."""
    try:
        return SearchConfig.from_dict(config).identity()
    except (TypeError, UserError):
        return None


@functools.lru_cache(maxsize=None)
def git_commit() -> str:
    """The commit of the code this process runs, ``<sha>-dirty`` when tracked files outside
    ``results/`` differ from it (as ``git describe --dirty``), ``unknown`` outside a checkout.
    Read once per process: the code a process runs is the code it imported."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        if not head:
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":(exclude)results"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                 timeout=10).stdout.strip()
        return f"{head}-dirty" if changed else head
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
            raise UserError(f"{run.path} is not a run folder (no config.json); "
                            f"give results/<experiment>/<run-id>")
        run.config()  # a config.json of another shape is refused here, before anything reads the run
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
        """``config.json``; one of another shape (not a run's) is refused with its path."""
        meta = read_json(self.config_file)
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) \
                or not isinstance(meta.get("seed"), int) or isinstance(meta.get("seed"), bool):
            raise UserError(f"{self.config_file} is not a run's config.json (it needs an object with "
                            f"'config' and an integer 'seed'); restore it from the run's copy or remove the "
                            f"run folder")
        return meta

    def config(self) -> SearchConfig:
        try:
            return SearchConfig.from_dict(self.meta()["config"])
        except TypeError as err:
            raise UserError(f"{self.config_file}: its 'config' does not describe a search ({err}); "
                            f"restore the file or remove the run folder") from None

    def epochs(self) -> list[dict]:
        return read_jsonl(self.epochs_file, required=("epoch",))

    def selections(self) -> list[dict]:
        return read_jsonl(self.path / "selections.jsonl", required=("epoch", "criterion"))

    # -- checkpoints ------------------------------------------------------------------
    def checkpoint_record(self, epoch: int) -> dict:
        """The record of ``epoch``, which must name a checkpoint (see ``checkpoint_path``)."""
        record = next((r for r in self.epochs() if r["epoch"] == epoch and r.get("checkpoint")), None)
        if record is None:
            raise UserError(f"{self.path} has no checkpoint record for epoch {epoch}")
        return record

    def checkpoint_path(self, record: dict) -> Path:
        """The checkpoint file an epoch record names; the entry must be well formed and its file
        must lie inside this run folder."""
        entry = record["checkpoint"]
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "sha256" not in entry:
            raise UserError(f"{self.epochs_file}: the checkpoint entry of epoch {record['epoch']} "
                            f"is malformed; restore the file")
        return self.inside(entry["file"])

    def inside(self, relative: str) -> Path:
        """``relative`` resolved inside the run folder; a path that leaves it is refused."""
        root = self.path.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or Path(relative).is_absolute():
            raise UserError(f"{self.epochs_file} names {relative!r}, a path outside the run folder "
                            f"{self.path}; refused (restore epochs.jsonl from the run's own copy)")
        return path

    def verified_checkpoint(self, epoch: int, map_location: torch.device | None = None) -> dict:
        """The checkpoint of ``epoch`` after checking that it is this run's own: its SHA-256 equals
        the one recorded when it was written, and the seed and config digest stored inside it
        equal the run's.  A swapped, edited or foreign checkpoint is refused, never scored."""
        record = self.checkpoint_record(epoch)
        path, entry = self.checkpoint_path(record), record["checkpoint"]
        if not path.is_file():
            raise UserError(f"Checkpoint {path} of epoch {epoch} is missing; choose another epoch")
        if sha256_file(path) != entry["sha256"]:
            raise UserError(f"Checkpoint {path} is not the one written at epoch {epoch} (SHA-256 differs "
                            f"from epochs.jsonl); it was replaced or damaged. Restore it, or resume the "
                            f"search to rewrite it")
        state = load_checkpoint(path, map_location)
        expected = {"seed": self.meta()["seed"], "config_digest": self._digest_of(record), "epoch": epoch}
        found = {key: state.get(key) for key in expected}
        if found != expected:
            wrong = ", ".join(f"{k} {found[k]!r} (run: {expected[k]!r})"
                              for k in expected if found[k] != expected[k])
            raise UserError(f"Checkpoint {path} belongs to another run: {wrong}; restore this run's own file")
        return state

    def _digest_of(self, record: dict) -> str:
        """The config digest an epoch's checkpoint was written under: the run's own, or for an
        epoch copied by ``--restart-from`` the source run's (recorded with the copy)."""
        epoch = record["epoch"]
        if "origin_digest" in record:
            return record["origin_digest"]
        if "restarted_from" in record:
            source = Run(record["restarted_from"])
            if not source.config_file.exists():
                raise UserError(f"Epoch {epoch} of {self.path} was copied from {source.path}, which is gone, "
                                f"and its checkpoint cannot be verified; resume from a later epoch")
            return source.config().digest()
        return self.config().digest()

    # -- writing ----------------------------------------------------------------------
    def start(self, meta: dict) -> None:
        """Create the folder and write config.json; an existing one must describe the same run."""
        if self.config_file.exists():
            old = self.meta()
            if _identity(old["config"]) != _identity(meta["config"]) or old["seed"] != meta["seed"]:
                raise UserError(f"{self.path} holds a different run (its config.json differs); "
                                f"choose another experiment name or remove the folder")
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
            raise UserError(f"The benchmark table changed since {self.path} was made "
                            f"(SHA-256 {benchmark_sha256[:12]} vs {recorded[:12]} recorded from "
                            f"{meta['benchmark'].get('source')}); pass --benchmark with the original table")
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
        append_jsonl(self.epochs_file, {**record, "commit": git_commit()})

    def mark_done(self, info: dict) -> None:
        write_json(self.path / "done", {**info, "commit": git_commit(),
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        (self.path / "failed").unlink(missing_ok=True)

    def mark_failed(self, error: BaseException) -> None:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        write_atomic(self.path / "failed", text.encode())

    # -- resuming -----------------------------------------------------------------------
    def last_good_checkpoint(self) -> tuple[int, Path] | None:
        """The newest checkpoint whose SHA-256 matches its epoch record (a corrupt one is skipped)."""
        records = {r["epoch"]: r for r in self.epochs() if r.get("checkpoint")}
        for epoch in sorted(records, reverse=True):
            path = self.checkpoint_path(records[epoch])
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
    made = [p for p in [path, *path.parents] if not p.exists()]  # the folders this lock creates
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
            if made and [p.name for p in path.iterdir()] == [name]:  # a failure before anything was
                (path / name).unlink()                            # written leaves no half-made folder
                for folder in made:
                    if any(folder.iterdir()):
                        break
                    folder.rmdir()
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


def run_state(path: Path) -> str:
    """A run folder's state: done / failed / running (locked) / incomplete / pending."""
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


def busy_error(path: Path) -> UserError:
    """The message for a run folder whose lock another live process holds."""
    return UserError(f"{path} is being written by another process (see {Path(path) / '.lock'}); "
                     f"wait for it to finish, or stop it, then rerun with --resume")


def _numpy_globals() -> list:
    """What a checkpoint's RNG state needs besides tensors (NumPy's generator state array)."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(path: str | Path, map_location: torch.device | None = None) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors, containers, numbers and
    NumPy's RNG state only, so a crafted file cannot run code when it is unpickled."""
    try:
        from bench.device import HOST

        with torch.serialization.safe_globals(_numpy_globals()):
            state = torch.load(path, map_location=map_location or HOST, weights_only=True)
    except Exception as err:
        raise UserError(f"Checkpoint {path} could not be read ({type(err).__name__}: {err}); it is corrupt. "
                        f"Delete it to resume from the one before.") from None
    if not isinstance(state, dict) or not {"model", "arch_state"} <= set(state):
        raise UserError(f"Checkpoint {path} is not a supernet checkpoint of this harness "
                        f"(no model/arch_state)")
    return state


def environment() -> dict:
    return {"torch": torch.__version__, "commit": git_commit(), "host_cpus": os.cpu_count()}
