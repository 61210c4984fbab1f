"""The NAS-Bench-201 cell space: op and edge orders, encodings, enumeration, isomorphism.

A cell is six op indices, one per edge, in the edge order ``EDGES``.  Encodings:

- NB201 string ``|o~0|+|o~0|o~1|+|o~0|o~1|o~2|`` (Dong & Yang, ICLR 2020, Fig. 1);
- op tuple ``(op_1<-0, op_2<-0, op_2<-1, op_3<-0, op_3<-1, op_3<-2)`` of op indices;
- cell code: the base-5 number of the op tuple (first edge most significant), which
  is the row of the enumeration ``all_cells()``;
- benchmark index: the row of a ground-truth table (see ``bench.nb201.benchmark``), which is
  *not* the cell code.

All functions are pure.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from bench.errors import UserError

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Op names in index order, as in all NB201 reference code."""
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""Edges as (to_node, from_node), in the row order of alpha and of the NB201 string."""
NUM_OPS = len(OPS)
NUM_EDGES = len(EDGES)
NUM_CELLS = NUM_OPS**NUM_EDGES
PARAMETER_FREE = frozenset({0, 1, 4})
"""Indices of ops without weights: none, skip_connect, avg_pool_3x3."""
SKIP_CONNECT = OPS.index("skip_connect")
EXPECTED_FORM = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                 "+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")

Cell = tuple[int, int, int, int, int, int]
_OP_INDEX = {name: i for i, name in enumerate(OPS)}
_PLACE = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)


def _bad(text: str, why: str) -> UserError:
    return UserError(
        f"Malformed NB201 cell string {text!r}: {why}. Expected three '+'-separated node groups "
        f"with 1, 2 and 3 'op~input' tokens, ops from {', '.join(OPS)}, e.g. {EXPECTED_FORM}"
    )


def parse(text: str) -> Cell:
    """Parse an NB201 string into an op tuple; every malformed input raises ``UserError``
    naming the bad token and showing the expected form."""
    if not isinstance(text, str):
        raise _bad(str(text), f"expected a string, got {type(text).__name__}")
    if text == "":
        raise _bad(text, "the string is empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _bad(text, "it contains whitespace")
    groups = text.split("+")
    if len(groups) != 3:
        raise _bad(text, f"found {len(groups)} node group(s) instead of 3")
    ops: list[int] = []
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise _bad(text, f"node group {group!r} must start and end with '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise _bad(text, f"node {node} group {group!r} has {len(tokens)} token(s), needs {node}")
        for expected_input, token in enumerate(tokens):
            name, sep, source = token.partition("~")
            if not sep:
                raise _bad(text, f"token {token!r} lacks '~input'")
            if name not in _OP_INDEX:
                raise _bad(text, f"unknown op {name!r} in token {token!r}")
            if source != str(expected_input):
                raise _bad(text, f"token {token!r} of node {node} must read from node {expected_input}")
            ops.append(_OP_INDEX[name])
    return tuple(ops)  # type: ignore[return-value]


def to_string(cell: Sequence[int]) -> str:
    """Op tuple -> NB201 string."""
    cell = validate_cell(cell)
    names = [OPS[o] for o in cell]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*names)


def validate_cell(cell: Sequence[int]) -> Cell:
    """Check an op tuple (six ints in [0, 5)) and return it as a tuple."""
    try:
        values = tuple(int(o) for o in cell)
    except (TypeError, ValueError):
        raise UserError(f"A cell must be six op indices, got {cell!r}") from None
    if len(values) != NUM_EDGES or any(not 0 <= o < NUM_OPS for o in values):
        raise UserError(f"A cell must be six op indices in 0..{NUM_OPS - 1}, got {cell!r}")
    return values  # type: ignore[return-value]


def as_cell(cell: str | Sequence[int]) -> Cell:
    """Accept an NB201 string or an op tuple."""
    return parse(cell) if isinstance(cell, str) else validate_cell(cell)


def to_code(cell: Sequence[int]) -> int:
    """Op tuple -> cell code (row of ``all_cells()``)."""
    return int(np.dot(validate_cell(cell), _PLACE))


def from_code(code: int) -> Cell:
    """Cell code -> op tuple."""
    if not 0 <= int(code) < NUM_CELLS:
        raise UserError(f"A cell code must be in 0..{NUM_CELLS - 1}, got {code}")
    return tuple(int(v) for v in all_cells()[int(code)])  # type: ignore[return-value]


def codes_of(cells: np.ndarray) -> np.ndarray:
    """Vectorized op tuples (n, 6) -> cell codes (n,)."""
    return np.asarray(cells, dtype=np.int64) @ _PLACE


@lru_cache(maxsize=1)
def all_cells() -> np.ndarray:
    """All 15,625 cells as one read-only int8 array of shape (15625, 6), row = cell code."""
    grid = np.indices((NUM_OPS,) * NUM_EDGES).reshape(NUM_EDGES, -1).T.astype(np.int8)
    grid.setflags(write=False)
    return grid


def iso_key(cell: Sequence[int]) -> str:
    """Canonical key of a cell: cells with equal keys are isomorphic (NB201's unique string).

    Follows ``Structure.to_unique_str(consider_zero=True)`` of the NB201 reference code
    (Dong & Yang, ICLR 2020, Sec. 2.1): node 0 is ``"0"``; an edge contributes ``"#"`` (zero)
    for ``none`` or a zero input, its input's string for ``skip_connect``, and
    ``"(input)@op"`` otherwise; a node joins its edges' strings sorted with ``+``.
    This yields the benchmark's 6,466 classes.
    """
    cell = validate_cell(cell)
    nodes = ["0"]
    for to in (1, 2, 3):
        parts = []
        for e, (j, i) in enumerate(EDGES):
            if j != to:
                continue
            op, source = OPS[cell[e]], nodes[i]
            if op == "none" or source == "#":
                parts.append("#")
            elif op == "skip_connect":
                parts.append(source)
            else:
                parts.append("(" + source + ")@" + op)
        nodes.append("+".join(sorted(parts)))
    return nodes[3]


@lru_cache(maxsize=1)
def iso_class_ids() -> np.ndarray:
    """Isomorphism class id per cell code (ids numbered by first occurrence in code order)."""
    keys: dict[str, int] = {}
    ids = np.empty(NUM_CELLS, dtype=np.int32)
    for code, cell in enumerate(all_cells()):
        ids[code] = keys.setdefault(iso_key(tuple(cell)), len(keys))
    ids.setflags(write=False)
    return ids


def has_path(cell: Sequence[int]) -> bool:
    """True if some input-output path avoids ``none`` (else the cell outputs zero)."""
    reach = [True, False, False, False]
    for e, (j, i) in enumerate(EDGES):
        reach[j] = reach[j] or (reach[i] and cell[e] != 0)
    return reach[3]


def _count_ops(cells: np.ndarray | Iterable[int], ops) -> np.ndarray | int:
    """Edges whose op is one of ``ops``, per cell; an int for one cell, an array for (n, 6)."""
    arr = np.asarray(cells)
    hits = np.isin(arr, sorted(ops))
    return int(hits.sum()) if arr.ndim == 1 else hits.sum(axis=1)


def count_parameter_free(cells: np.ndarray | Iterable[int]) -> np.ndarray | int:
    """Number of parameter-free ops (none, skip, pool) per cell; accepts one cell or (n, 6)."""
    return _count_ops(cells, PARAMETER_FREE)


def count_skip_connections(cells: np.ndarray | Iterable[int]) -> np.ndarray | int:
    """Number of ``skip_connect`` edges per cell (DARTS's degeneration count); one cell or (n, 6)."""
    return _count_ops(cells, {SKIP_CONNECT})


def select_cell(scores: np.ndarray, allow_none: bool = True) -> Cell:
    """Per-edge argmax of an op-score matrix (6 x 5); NaN (unavailable) ops are never chosen.

    Ties go to the lowest op index (``numpy.argmax``), as in the reference code.
    ``allow_none=False`` excludes op 0 (the DARTS-space convention; not the NB201 one).
    """
    s = np.array(scores, dtype=np.float64)
    if s.shape != (NUM_EDGES, NUM_OPS):
        raise UserError(f"An op-score matrix must have shape (6, 5), got {s.shape}")
    s[np.isnan(s)] = -np.inf
    if not allow_none:
        s[:, 0] = -np.inf
    if np.isneginf(s).all(axis=1).any():
        raise UserError("An edge of the op-score matrix has no available op to select")
    return tuple(int(o) for o in s.argmax(axis=1))  # type: ignore[return-value]
