"""NAS-Bench-201 ground truth: one class with vectorized arrays aligned to ``space.all_cells()``.

Metric names are ``<dataset>_<quantity>[_12ep]`` with dataset one of ``DATASETS`` and
quantity ``valid`` / ``test`` (top-1 accuracy in %, mean over the benchmark's seeds),
``params`` (M) or ``flops`` (M); ``_12ep`` marks the 12-epoch (low-fidelity) recipe,
no suffix the 200-epoch one (hp="200").  Splits follow the NB201 API
(Dong & Yang, ICLR 2020; NATS-Bench, TPAMI 2021):

=================  ==========================================  ===========================
dataset            ``valid``                                   ``test``
=================  ==========================================  ===========================
cifar10-valid      25k half of the train set ("x-valid")        10k test set ("ori-test")
cifar10            (none: trained on all 50k)                   10k test set ("ori-test")
cifar100           half of the test set ("x-valid")             other half ("x-test")
ImageNet16-120     half of the valid set ("x-valid")            other half ("x-test")
=================  ==========================================  ===========================

Sources: a compact table (CSV/Parquet with an arch-string column and metric columns;
foreign column names are mapped by ``map_column``), the official
``NAS-Bench-201-v1_*.pth`` file (read with the ``nas-bench-201`` package's result classes)
and a NATS-Bench topology directory (read with ``nats_bench``).  Convert an official
file once with ``python -m bench benchmark convert`` and load the table afterwards.

Every reader ends in ``from_frame``, whose ``check_columns`` validates the loaded arrays once:
unparseable or infinite values, accuracies given as fractions or outside [0, 100], negative
costs, missing, non-integer or duplicate indices, malformed or repeated cells, and two columns
that map to the same metric raise a ``UserError`` naming the column, the row and the fix.  An
empty field is a missing value (NaN), never an error.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from bench.atomic import sha256_file, write_atomic
from bench.errors import UserError
from bench.nb201 import space

DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
QUANTITIES = ("valid", "test", "params", "flops")
DEFAULT_METRIC = "cifar10_test"
HEADLINE_METRICS = ("cifar10_test", "cifar100_test", "ImageNet16-120_test")
"""The three test accuracies every report shows (search on CIFAR-10, look up on all three)."""
GET_OFFICIAL = (
    "Download the official NAS-Bench-201 file (NAS-Bench-201-v1_1-096897.pth or v1_0-e61699.pth) "
    "or a NATS-Bench topology directory (NATS-tss-v1_0-3ffb9-simple) from the links in "
    "https://github.com/D-X-Y/NAS-Bench-201, convert it once with "
    "`python -m bench benchmark convert --from FILE --to nb201.parquet`, and pass "
    "--benchmark nb201.parquet (or set BENCH_BENCHMARK)."
)

# (name as written in a foreign header, normalised) -> our dataset name; order matters
_DATASET_ALIASES = (
    ("cifar10valid", "cifar10-valid"),
    ("imagenet16120", "ImageNet16-120"),
    ("imagenet16", "ImageNet16-120"),
    ("imagenet", "ImageNet16-120"),
    ("in16", "ImageNet16-120"),
    ("cifar100", "cifar100"),
    ("c100", "cifar100"),
    ("cifar10", "cifar10"),
    ("c10", "cifar10"),
)
_ARCH_ALIASES = ("arch", "archstr", "architecture", "architecturestring", "archstring", "genotype", "cell")
_INDEX_ALIASES = ("index", "archindex", "benchmarkindex", "idx")


def map_column(name: str) -> str | None:
    """Map a column header to a metric name (``cifar10_test``, ``cifar100_valid_12ep``, ...),
    to ``"arch"`` / ``"index"``, or to None when it names no known quantity.

    Accepts this project's names and foreign ones such as ``CIFAR10TestAccuracy200Epochs``.
    """
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    if norm in _ARCH_ALIASES:
        return "arch"
    if norm in _INDEX_ALIASES:
        return "index"
    for alias, dataset in _DATASET_ALIASES:
        if norm.startswith(alias) or alias in norm:
            rest = norm.replace(alias, "", 1)
            break
    else:
        return None
    quantity = next((q for q in ("valid", "test", "params", "flops") if q in rest), None)
    if quantity is None:
        if "val" in rest:
            quantity = "valid"
        elif "param" in rest:
            quantity = "params"
        elif "flop" in rest:
            quantity = "flops"
        else:
            return None
    low_fidelity = re.search(r"(?<!\d)12(ep|epoch|epochs)?(?!\d)", rest) is not None
    return f"{dataset}_{quantity}" + ("_12ep" if low_fidelity else "")


@lru_cache(maxsize=1)
def _string_to_code() -> dict[str, int]:
    return {space.to_string(tuple(c)): code for code, c in enumerate(space.all_cells())}


@dataclass
class GroundTruth:
    """Benchmark numbers for all 15,625 cells, every array indexed by cell code.

    ``metrics[name][code]`` is NaN where the source has no value for that cell.
    ``index[code]`` is the cell's benchmark index (row of the official table), -1 if unknown.
    """

    metrics: dict[str, np.ndarray]
    index: np.ndarray
    source: str
    sha256: str
    origin: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._code_of_index = {int(i): c for c, i in enumerate(self.index) if i >= 0}

    @property
    def source_name(self) -> str:
        """The source by its file (or folder) name: what reports print, never a machine path."""
        return Path(self.source).name or self.source

    # -- lookups -----------------------------------------------------------------
    @property
    def metric_names(self) -> list[str]:
        return sorted(self.metrics)

    def metric(self, name: str) -> np.ndarray:
        """The array of a metric (aligned to cell codes); a clear error names what exists."""
        if name not in self.metrics:
            raise UserError(f"Metric {name!r} is not in the benchmark source {self.source}; it has: "
                            f"{', '.join(self.metric_names)}. (CIFAR-100/ImageNet16-120 valid, params and "
                            f"FLOPs need the official file: {GET_OFFICIAL})")
        return self.metrics[name]

    def code(self, cell: str | Sequence[int] | int) -> int:
        """Cell code of an NB201 string, an op tuple, or a benchmark index (an int)."""
        if isinstance(cell, (int, np.integer)):
            if int(cell) not in self._code_of_index:
                raise UserError(f"Benchmark index {cell} is not in {self.source}, which lists "
                                f"{len(self._code_of_index)} cells (indices 0..{space.NUM_CELLS - 1} in a "
                                f"full benchmark)")
            return self._code_of_index[int(cell)]
        return space.to_code(space.as_cell(cell))

    def benchmark_index(self, cell: str | Sequence[int]) -> int:
        return int(self.index[self.code(cell)])

    def cell_of_index(self, index: int) -> space.Cell:
        return space.from_code(self.code(int(index)))

    def lookup(self, cell: str | Sequence[int] | int,
               metrics: Sequence[str] | None = None) -> dict[str, float]:
        """All (or the named) metrics of one cell as floats (NaN where missing)."""
        code = self.code(cell)
        names = list(metrics) if metrics is not None else self.metric_names
        return {name: float(self.metric(name)[code]) for name in names}

    def available(self, name: str) -> np.ndarray:
        """Boolean mask over cell codes that have a value for ``name``."""
        return ~np.isnan(self.metric(name))

    # -- persistence -------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        cells = space.all_cells()
        order = np.argsort(np.where(self.index >= 0, self.index, np.iinfo(np.int64).max), kind="stable")
        frame = pd.DataFrame({
            "index": self.index[order],
            "arch": [space.to_string(tuple(cells[c])) for c in order],
        })
        for name in self.metric_names:
            frame[name] = self.metrics[name][order]
        return frame

    def save(self, path: str | Path) -> None:
        """Write the compact table (CSV or Parquet, by suffix) with its provenance, atomically."""
        path = Path(path)
        frame = self.to_frame()
        origin = {**self.origin, "source": self.origin.get("source", self.source),
                  "source_sha256": self.origin.get("source_sha256", self.sha256)}
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   b"bench.origin": json.dumps(origin).encode()})
            write_atomic(path, lambda handle: pq.write_table(table, handle))
        elif path.suffix == ".csv":
            write_atomic(path, frame.to_csv(index=False, float_format="%.6f").encode())
            write_atomic(_sidecar(path), (json.dumps(origin, indent=2) + "\n").encode())
        else:
            raise UserError(f"Cannot write {path}: the compact table must end in .parquet or .csv")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".origin.json")


# -- readers ---------------------------------------------------------------------
def metric_quantity(name: str) -> str:
    """The quantity of a metric name: ``valid``, ``test``, ``params`` or ``flops``."""
    return name.split("_")[1]


def _column_map(columns: Sequence, source: str) -> dict[str, str]:
    """Header -> metric name / ``arch`` / ``index``; two headers naming the same thing are refused."""
    mapping: dict[str, str] = {}
    owner: dict[str, str] = {}
    for column in map(str, columns):
        target = map_column(column)
        if target is None:
            continue
        if target in owner:
            raise UserError(f"{source}: columns {owner[target]!r} and {column!r} both map to {target!r}, so "
                            f"one would shadow the other; delete or rename one of them")
        owner[target] = column
        mapping[column] = target
    return mapping


def _where(archs: Sequence[str], row: int) -> str:
    """A row of a table for messages: rows count from 1, header excluded."""
    return f"row {row + 1} (cell {archs[row]})"


def _first_repeat(values: np.ndarray) -> tuple[int, int] | None:
    """The rows of the first value that occurs twice, or None."""
    order = np.argsort(values, kind="stable")
    same = np.flatnonzero(values[order][1:] == values[order][:-1])
    return (int(order[same[0]]), int(order[same[0] + 1])) if same.size else None


def _arch_codes(source: str, archs: Sequence[str]) -> np.ndarray:
    """Cell codes of a table's arch strings; a malformed or repeated cell names its row(s)."""
    table = _string_to_code()
    codes = np.empty(len(archs), dtype=np.int64)
    for row, text in enumerate(archs):
        code = table.get(text) if isinstance(text, str) else None
        if code is None:
            try:
                space.parse(text)
            except UserError as err:
                raise UserError(f"{source}, row {row + 1}: {err}") from None
            raise UserError(f"{source}, row {row + 1}: cell {text!r} could not be mapped")  # pragma: no cover
        codes[row] = code
    repeat = _first_repeat(codes)
    if repeat is not None:
        first, second = repeat
        raise UserError(f"{source} lists cell {archs[first]} twice, in rows {first + 1} and {second + 1}; "
                        f"keep one row per cell")
    return codes


def _numbers(source: str, column: str, raw: pd.Series, archs: Sequence[str]) -> np.ndarray:
    """A column as float64: empty fields become NaN; text that is no number, or inf, is refused."""
    values = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    unparsed = np.flatnonzero(np.isnan(values) & ~pd.isna(raw).to_numpy())
    if unparsed.size:
        row = int(unparsed[0])
        raise UserError(f"{source}: column {column!r}, {_where(archs, row)} holds {raw.iloc[row]!r}, "
                        f"which is not a number; write plain numbers (accuracies in %, without a % sign), "
                        f"or leave the field empty where the value is missing")
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        row = int(infinite[0])
        raise UserError(f"{source}: column {column!r}, {_where(archs, row)} is {values[row]}; give the "
                        f"finite value, or leave the field empty where it is missing")
    return values


def _check_metric(source: str, column: str, name: str, values: np.ndarray, codes: np.ndarray,
                  archs: Sequence[str]) -> None:
    """Accuracies are percentages in [0, 100] (not fractions); params and FLOPs are >= 0."""
    low, high = (0.0, 100.0) if metric_quantity(name) in ("valid", "test") else (0.0, np.inf)
    outside = np.flatnonzero((values < low) | (values > high))
    if outside.size:
        row = int(outside[0])
        unit = "an accuracy in % must lie in [0, 100]" if high == 100.0 else "a cost cannot be negative"
        raise UserError(f"{source}: column {column!r} ({name}), {_where(archs, row)} is {values[row]}: "
                        f"{unit}; correct the value")
    if high == 100.0:
        live = np.flatnonzero(_has_path()[codes] & ~np.isnan(values))
        if live.size and values[live].max() <= 1.0:
            row = int(live[np.argmax(values[live])])
            raise UserError(f"{source}: column {column!r} ({name}) holds fractions, not percentages (its "
                            f"largest value is {values[row]} at {_where(archs, row)}); multiply the column "
                            f"by 100")


def _index_values(source: str, column: str, raw: pd.Series, archs: Sequence[str]) -> np.ndarray:
    """Benchmark indices: present, integral, in range (-1: unknown, as ``GroundTruth.index``), distinct."""
    values = _numbers(source, column, raw, archs)
    for row, value in enumerate(values):
        if np.isnan(value) or value != int(value) or not -1 <= value < space.NUM_CELLS:
            shown = "empty" if np.isnan(value) else f"{raw.iloc[row]}"
            raise UserError(f"{source}: index column {column!r}, {_where(archs, row)} is {shown}; every "
                            f"row needs its benchmark index, an integer in 0..{space.NUM_CELLS - 1} "
                            f"(-1 where unknown)")
    repeat = _first_repeat(np.where(values >= 0, values, -np.arange(1, len(values) + 1)))
    if repeat is not None:
        raise UserError(f"{source}: index column {column!r} gives index {int(values[repeat[0]])} to rows "
                        f"{repeat[0] + 1} and {repeat[1] + 1} ({archs[repeat[0]]}, {archs[repeat[1]]}); "
                        f"each cell has its own index")
    return values.astype(np.int64)


@lru_cache(maxsize=1)
def _has_path() -> np.ndarray:
    """Boolean mask over cell codes: the cell connects input to output."""
    return np.array([space.has_path(tuple(cell)) for cell in space.all_cells()])


def check_columns(frame: pd.DataFrame, mapping: dict[str, str], source: str
                  ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Validate a loaded table once, for every reader: (cell codes, benchmark indices or None,
    metric name -> float64 values per row).  Any bad value raises a ``UserError`` naming the
    column, the row and the fix."""
    by_target = {target: column for column, target in mapping.items()}
    archs = [a if isinstance(a, str) else str(a) for a in frame[by_target["arch"]].tolist()]
    codes = _arch_codes(source, archs)
    index = None
    if "index" in by_target:
        index = _index_values(source, by_target["index"], frame[by_target["index"]], archs)
    metrics = {}
    for column, name in mapping.items():
        if name in ("arch", "index"):
            continue
        metrics[name] = _numbers(source, column, frame[column], archs)
        _check_metric(source, column, name, metrics[name], codes, archs)
    return codes, index, metrics


def from_frame(frame: pd.DataFrame, source: str, sha256: str, origin: dict | None = None) -> GroundTruth:
    """Build ground truth from a table with an arch-string column and metric columns."""
    mapping = _column_map(frame.columns, source)
    if "arch" not in mapping.values():
        raise UserError(f"{source} has no architecture-string column (looked for one of "
                        f"{', '.join(_ARCH_ALIASES)}); its columns are {list(frame.columns)}")
    metric_columns = [c for c, t in mapping.items() if t not in ("arch", "index")]
    if not metric_columns:
        raise UserError(f"{source} has no metric column named by data set and split (e.g. cifar10_test, "
                        f"CIFAR10TestAccuracy200Epochs); its columns are {list(frame.columns)}")
    codes, rows_index, values = check_columns(frame, mapping, source)
    index = np.full(space.NUM_CELLS, -1, dtype=np.int64)
    index[codes] = rows_index if rows_index is not None else np.arange(len(frame))
    metrics = {}
    for name, column_values in values.items():
        array = np.full(space.NUM_CELLS, np.nan)
        array[codes] = column_values
        array.setflags(write=False)
        metrics[name] = array
    return GroundTruth(metrics=metrics, index=index, source=source, sha256=sha256,
                       origin={**(origin or {}), "column_map": {c: mapping[c] for c in metric_columns}})


def load_table(path: str | Path) -> GroundTruth:
    """Read a compact CSV or Parquet table (this project's or a third-party layout)."""
    path = Path(path)
    _require_file(path)
    digest = sha256_file(path)
    origin: dict = {}
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(b"bench.origin")
            origin = json.loads(raw) if raw else {}
            frame = table.to_pandas()
        else:
            frame = pd.read_csv(path)
            if _sidecar(path).exists():
                origin = json.loads(_sidecar(path).read_text())
    except UserError:
        raise
    except Exception as err:  # pyarrow/pandas raise many types for a corrupt file
        raise UserError(f"Could not read the benchmark table {path} ({type(err).__name__}: {err}). The file "
                        f"is truncated or not a CSV/Parquet table; restore it or convert it again. "
                        f"{GET_OFFICIAL}") from None
    return from_frame(frame, source=str(path), sha256=digest, origin=origin)


# The official API's split names per (dataset, our quantity); mirrors NASBench201API.get_more_info.
_OFFICIAL_SPLITS = {
    ("cifar10-valid", "valid"): "x-valid", ("cifar10-valid", "test"): "ori-test",
    ("cifar10", "test"): "ori-test",
    ("cifar100", "valid"): "x-valid", ("cifar100", "test"): "x-test",
    ("ImageNet16-120", "valid"): "x-valid", ("ImageNet16-120", "test"): "x-test",
}


def _official_record(arch_results) -> dict[str, float]:
    """Metrics of one ``nas_201_api.api_utils.ArchResults`` (mean over seeds)."""
    row: dict[str, float] = {}
    for (dataset, quantity), split in _OFFICIAL_SPLITS.items():
        if dataset not in arch_results.get_dataset_names():
            continue
        try:
            metrics = arch_results.get_metrics(dataset, split, is_random=False)
            row[f"{dataset}_{quantity}"] = float(metrics["accuracy"])
        except (KeyError, AssertionError):
            pass
    for dataset in DATASETS:
        if dataset in arch_results.get_dataset_names():
            costs = arch_results.get_compute_costs(dataset)
            row[f"{dataset}_params"] = float(costs["params"])
            row[f"{dataset}_flops"] = float(costs["flops"])
    return row


def _records_to_truth(rows: Iterator[tuple[int, str, dict[str, float]]], source: str, sha256: str,
                      origin: dict, all_archs: Sequence[str]) -> GroundTruth:
    """Ground truth from per-cell records; ``all_archs`` (the file's index order) maps every
    cell to its benchmark index, also cells without records (their metrics stay NaN)."""
    if not isinstance(all_archs, (list, tuple)):
        raise UserError(f"{source}: meta_archs is of type {type(all_archs).__name__}, not the list of cell "
                        f"strings in index order; the file is damaged or not an official one. {GET_OFFICIAL}")
    codes = _arch_codes(f"{source} (meta_archs)", list(all_archs))
    records = [{"index": i, "arch": a, **m} for i, a, m in rows]
    if not records:
        raise UserError(f"{source} holds no architecture records. {GET_OFFICIAL}")
    truth = from_frame(pd.DataFrame.from_records(records), source=source, sha256=sha256, origin=origin)
    truth.index[codes] = np.arange(len(all_archs))
    truth.__post_init__()
    return truth


def _bad_record(source: str | Path, index, err: Exception) -> UserError:
    return UserError(f"{source}: the record of benchmark index {index!r} is not a NAS-Bench-201 result "
                     f"record ({type(err).__name__}: {err}); the file is damaged or not an official one. "
                     f"{GET_OFFICIAL}")


def _official_blob(path: Path, blob) -> tuple[Sequence[str], dict]:
    """(meta_archs, arch2infos) of a loaded official file, their shapes checked before any record is read."""
    if not isinstance(blob, dict) or not {"meta_archs", "arch2infos"} <= set(blob):
        raise UserError(f"{path} is not an official NAS-Bench-201 file (no meta_archs/arch2infos). "
                        f"{GET_OFFICIAL}")
    archs, infos = blob["meta_archs"], blob["arch2infos"]
    if not isinstance(infos, dict):
        raise UserError(f"{path}: arch2infos is of type {type(infos).__name__}, not a dict from benchmark "
                        f"index to record; the file is damaged or not an official one. {GET_OFFICIAL}")
    count = len(archs) if isinstance(archs, (list, tuple)) else 0
    stray = [i for i in infos if not isinstance(i, (int, np.integer)) or not 0 <= i < count]
    if isinstance(archs, (list, tuple)) and stray:
        raise UserError(f"{path}: arch2infos has a record under {stray[0]!r}, which is no index into "
                        f"meta_archs (0..{count - 1}); the file is damaged or not an official one. "
                        f"{GET_OFFICIAL}")
    return archs, infos


def _official_entry(info) -> dict[str, float]:
    """Metrics of one ``arch2infos`` entry: state dicts ``full`` (200 epochs) and ``less`` (12 epochs)."""
    from nas_201_api.api_utils import ArchResults

    parts = info if isinstance(info, dict) else {}
    if not isinstance(parts.get("full"), dict) or not isinstance(parts.get("less", {}), dict):
        raise TypeError("expected a dict whose 'full' (and 'less') entries are ArchResults state dicts")
    metrics = _official_record(ArchResults.create_from_state_dict(info["full"]))
    if "less" in info:
        low = _official_record(ArchResults.create_from_state_dict(info["less"]))
        metrics.update({f"{k}_12ep": v for k, v in low.items() if not k.endswith(("params", "flops"))})
    return _nonempty(metrics)


def _nonempty(metrics: dict[str, float]) -> dict[str, float]:
    if not metrics:
        raise ValueError(f"it holds no results for any of {', '.join(DATASETS)}")
    return metrics


def load_official_pth(path: str | Path) -> GroundTruth:
    """Read ``NAS-Bench-201-v1_0-e61699.pth`` / ``v1_1-096897.pth``.

    Uses ``torch.load(..., weights_only=False)``: the official file pickles the API's own
    classes, which current torch refuses by default.  Only load files you trust.  The file
    needs tens of GB of RAM; convert it once into a compact table.
    """
    import torch
    from tqdm import tqdm

    path = Path(path)
    _require_file(path)
    digest = sha256_file(path)
    try:
        from bench.device import HOST

        blob = torch.load(path, map_location=HOST, weights_only=False)
    except Exception as err:
        raise UserError(f"Could not read the official benchmark file {path} ({type(err).__name__}: {err}); "
                        f"it is truncated or corrupt. {GET_OFFICIAL}") from None
    archs, infos = _official_blob(path, blob)

    def rows():
        for index in tqdm(sorted(infos), desc="reading NAS-Bench-201", unit="cell", leave=False):
            try:
                metrics = _official_entry(infos[index])
            except Exception as err:  # the pickled records can hold anything
                raise _bad_record(path, index, err) from None
            yield int(index), archs[int(index)], metrics

    return _records_to_truth(rows(), str(path), digest, {"format": "nas-bench-201-pth", "source": str(path),
                                                          "source_sha256": digest}, archs)


def load_nats_directory(path: str | Path) -> GroundTruth:
    """Read a NATS-Bench topology directory (``NATS-tss-v1_0-3ffb9-simple``) with ``nats_bench``.

    Only cells whose ``NNNNNN.pickle.pbz2`` is present are read; the others stay NaN.
    """
    import nats_bench
    from tqdm import tqdm

    path = Path(path)
    if not path.is_dir() or not (path / "meta.pickle.pbz2").exists():
        raise UserError(f"{path} is not a NATS-Bench topology directory (no meta.pickle.pbz2). "
                        f"{GET_OFFICIAL}")
    digest = sha256_file(path / "meta.pickle.pbz2")
    try:
        api = nats_bench.create(str(path), "tss", fast_mode=True, verbose=False)
    except Exception as err:
        raise UserError(f"nats_bench could not open {path} ({type(err).__name__}: {err}). "
                        f"{GET_OFFICIAL}") from None
    present = sorted(int(p.name.split(".")[0]) for p in path.glob("[0-9]*.pickle.pbz2"))

    def rows():
        for index in tqdm(present, desc="reading NATS-Bench", unit="cell", leave=False):
            try:
                metrics = _nats_entry(api, index)
            except Exception as err:  # the pickled records can hold anything
                raise _bad_record(path / f"{index:06d}.pickle.pbz2", index, err) from None
            yield index, api.arch(index), metrics
            api.clear_params(index, None)

    return _records_to_truth(rows(), str(path), digest, {"format": "nats-tss-directory", "source": str(path),
                                                          "source_sha256": digest}, api.meta_archs)


def _nats_entry(api, index: int) -> dict[str, float]:
    """Metrics of one NATS-Bench topology record, 200 and 12 epochs (costs from the 200-epoch runs)."""
    metrics: dict[str, float] = {}
    for hp, suffix in (("200", ""), ("12", "_12ep")):
        api._prepare_info(index)
        results = api.arch2infos_dict[index][hp]
        for key, value in _official_record(results).items():
            if suffix and key.endswith(("params", "flops")):
                continue
            metrics[key + suffix] = value
    return _nonempty(metrics)


def _require_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"Benchmark file {path} does not exist. {GET_OFFICIAL}")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"Benchmark file {path} is empty; restore it or download it again. {GET_OFFICIAL}")


def load(path: str | Path | None = None) -> GroundTruth:
    """Load ground truth from any supported source, chosen by what ``path`` is.

    None -> the default (``bench.paths.default_benchmark_file``).
    """
    from bench.paths import default_benchmark_file

    path = Path(path) if path is not None else default_benchmark_file()
    if path.is_dir():
        return load_nats_directory(path)
    if path.suffix in (".pth", ".pt"):
        return load_official_pth(path)
    if path.suffix in (".csv", ".parquet"):
        return load_table(path)
    _require_file(path)
    raise UserError(f"Unknown benchmark format {path.name!r}: give a .csv/.parquet table, an official .pth "
                    f"file or a NATS-Bench topology directory")


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> GroundTruth:
    return load(path)


def load_cached(path: str | Path | None = None) -> GroundTruth:
    """``load`` with an in-process cache keyed by path and modification time."""
    from bench.paths import default_benchmark_file

    path = Path(path) if path is not None else default_benchmark_file()
    if not path.exists():
        return load(path)  # raises the helpful error
    return _cached(str(path.resolve()), path.stat().st_mtime_ns)


def source_digest(source: str | Path) -> str:
    """SHA-256 that identifies a source: the file's, or a NATS directory's meta file's."""
    source = Path(source)
    return sha256_file(source / "meta.pickle.pbz2" if source.is_dir() else source)


def convert(source: str | Path, target: str | Path) -> GroundTruth:
    """Read any source once and write the compact table; returns the loaded ground truth.

    If ``target`` already holds a conversion of the same source (same SHA-256), the source
    is not read again."""
    target = Path(target)
    if target.suffix not in (".parquet", ".csv"):
        raise UserError(f"Cannot write {target}: the compact table must end in .parquet or .csv")
    if target.exists() and Path(source).exists():
        try:
            existing = load_table(target)
        except UserError:
            existing = None
        if existing is not None and existing.origin.get("source_sha256") == source_digest(source):
            existing.origin["reused"] = True
            return existing
    started = time.perf_counter()
    truth = load(source)
    truth.origin["converted_seconds"] = round(time.perf_counter() - started, 3)
    truth.save(target)
    return truth
