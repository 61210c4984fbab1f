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


MAX_INTEGER_DIGITS = 30
"""Longer integers in a JSON file are refused: no number this harness writes comes near it."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses absurd integers and nesting with ``ValueError`` (a
    ``json.JSONDecodeError`` is one), never ``RecursionError`` or ``OverflowError``."""
    try:
        return json.loads(text, parse_int=_integer)
    except (RecursionError, OverflowError) as err:
        raise ValueError(f"{type(err).__name__}: nested or sized beyond reason") from None


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return parse_json(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"Missing file {path}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not valid JSON ({err}); restore or delete it") from None


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """The records of a JSON-lines log.  Only a partial *last* line (no newline: a write cut by
    a kill) is ignored; any other line that is not a JSON object holding the ``required`` keys
    stops the caller with a ``UserError`` naming file and line, and nothing is rewritten."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_bytes().split(b"\n")[:-1]  # the part after the last newline is partial
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except (UnicodeDecodeError, ValueError) as err:
            raise UserError(f"{path} line {number} is corrupt ({type(err).__name__}); restore the file "
                            f"from a copy or remove that line by hand (records after it are kept)") from None
        missing = [key for key in required if not isinstance(record, dict) or key not in record]
        if not isinstance(record, dict) or missing:
            raise UserError(f"{path} line {number} is not a record of this file (missing "
                            f"{', '.join(missing) or 'an object'}); restore the file or remove that line")
        records.append(record)
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
        raise UserError(f"Could not append to {path}: {err.strerror or err}. Free disk space or fix "
                        f"permissions, then rerun; complete records already there are kept (a partial "
                        f"last line is dropped on the next write).") from err


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
