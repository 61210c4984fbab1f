"""Reading and writing op-score matrices (6 edges x 5 ops, ``docs/criteria.md`` §2) as JSON or CSV.

JSON: a 6 x 5 list of lists, or an object with a ``"scores"`` key holding one; ``null``
means unavailable (NaN).  CSV: 6 rows of 5 numbers, optionally with a header row of op
names and a first column of edge names (``1<-0`` ...).  Rows in edge order, columns in op
order (``bench.nb201.space.EDGES`` / ``OPS``).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from bench.atomic import parse_json, write_atomic
from bench.errors import UserError
from bench.nb201 import space

EDGE_NAMES = tuple(f"{j}<-{i}" for j, i in space.EDGES)
_FORM = ("a 6 x 5 matrix: rows = edges " + ", ".join(EDGE_NAMES) + "; columns = ops " + ", ".join(space.OPS))


def _as_matrix(rows: object, source: str) -> np.ndarray:
    if not isinstance(rows, list) or len(rows) != space.NUM_EDGES:
        raise UserError(f"{source}: expected {_FORM}; "
                        f"got {len(rows) if isinstance(rows, list) else type(rows).__name__} rows")
    out = np.empty((space.NUM_EDGES, space.NUM_OPS))
    for e, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != space.NUM_OPS:
            raise UserError(f"{source}: row {e} ({EDGE_NAMES[e]}) must hold 5 numbers, got {row!r}; "
                            f"expected {_FORM}")
        for o, value in enumerate(row):
            if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "null")):
                out[e, o] = math.nan
                continue
            if isinstance(value, bool):
                raise UserError(f"{source}: entry [{e}][{o}] is {value!r}, not a number; expected {_FORM}")
            try:
                out[e, o] = float(value)
            except (TypeError, ValueError):
                raise UserError(f"{source}: entry [{e}][{o}] = {value!r} is not a number; "
                                f"expected {_FORM}") from None
            if math.isinf(out[e, o]):
                raise UserError(f"{source}: entry [{e}][{o}] is infinite; use null/NaN for an unavailable op")
    if np.isnan(out).all(axis=1).any():
        raise UserError(f"{source}: an edge has no available op (all NaN)")
    return out


def read_scores(path: str | Path) -> np.ndarray:
    """Read an op-score matrix from ``.json`` or ``.csv``; bad files raise ``UserError``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Op-score file {path} does not exist; give a JSON or CSV file with {_FORM}")
    text = path.read_text()
    if not text.strip():
        raise UserError(f"Op-score file {path} is empty; it must hold {_FORM}")
    if path.suffix.lower() == ".json":
        try:
            data = parse_json(text)
        except ValueError as err:
            raise UserError(f"Op-score file {path} is not valid JSON ({err}); it must hold {_FORM}") from None
        if isinstance(data, dict):
            if "scores" not in data:
                raise UserError(f"{path}: a JSON object needs a 'scores' key holding {_FORM}")
            data = data["scores"]
        return _as_matrix(data, str(path))
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
        if rows and rows[0] and rows[0][-1].strip() in space.OPS:
            rows = rows[1:]
        if rows and len(rows[0]) == space.NUM_OPS + 1:
            rows = [r[1:] for r in rows]
        return _as_matrix([list(r) for r in rows], str(path))
    raise UserError(f"Op-score file {path} must end in .json or .csv")


def write_scores(path: str | Path, scores: np.ndarray) -> None:
    """Write an op-score matrix as JSON (NaN as null), atomically."""
    payload = {"edges": EDGE_NAMES, "ops": space.OPS, "scores": to_jsonable(scores)}
    write_atomic(path, (json.dumps(payload, indent=1) + "\n").encode())


def to_jsonable(scores: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else float(v) for v in row]
            for row in np.asarray(scores, dtype=np.float64)]


def from_jsonable(rows: list[list[float | None]]) -> np.ndarray:
    """The inverse of ``to_jsonable``: a 6 x 5 float64 matrix, ``None`` as NaN."""
    return np.array([[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
