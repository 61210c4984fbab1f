"""Atomic file writes, append-only JSON-lines logs and checksums.

Every result and checkpoint goes through ``write_atomic``: the bytes land in a temporary
file in the same folder, are fsynced, then renamed over the target, so a reader sees
either the old file or the new one, never a mix.  A failed write (disk full, kill)
leaves the previous file intact and removes the temporary file.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.errors import UserError


def write_atomic(path: str | Path, data: bytes | Callable[[io.BufferedWriter], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError):
            raise UserError(f"Could not write {path}: {err.strerror or err}. Free disk space or fix "
                            f"permissions, then rerun; files written before are intact.") from err
        raise


def write_json(path: str | Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"Missing file {path}") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}); restore or delete it") from None


def read_jsonl(path: str | Path) -> list[dict]:
    """Complete records of a JSON-lines log; a partial last line (no newline, or not JSON) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # the part after the last newline is partial
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def rewrite_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Atomically replace a JSON-lines log with ``records`` (drops a partial tail)."""
    payload = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    write_atomic(path, payload.encode())


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record as a whole line; a partial tail from an earlier kill is dropped first."""
    path = Path(path)
    if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        rewrite_jsonl(path, read_jsonl(path))
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    try:
        with open(path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise UserError(f"Could not append to {path}: {err.strerror or err}. Free disk space or fix permissions, "
                        f"then rerun; complete records already there are kept (a partial last line is "
                        f"dropped on the next write).") from err


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
