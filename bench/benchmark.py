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

from bench import space
from bench.atomic import sha256_file, write_atomic
from bench.errors import UserError

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


def _codes_from_strings(strings: Sequence[str]) -> np.ndarray:
    table = _string_to_code()
    codes = np.empty(len(strings), dtype=np.int64)
    for row, text in enumerate(strings):
        code = table.get(text)
        if code is None:
            space.parse(text)  # raises a UserError naming the bad token
            raise UserError(f"Cell string {text!r} could not be mapped")  # pragma: no cover
        codes[row] = code
    return codes


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
                                f"{len(self._code_of_index)} cells (indices 0..{space.NUM_CELLS - 1} in a full benchmark)")
            return self._code_of_index[int(cell)]
        return space.to_code(space.as_cell(cell))

    def benchmark_index(self, cell: str | Sequence[int]) -> int:
        return int(self.index[self.code(cell)])

    def cell_of_index(self, index: int) -> space.Cell:
        return space.from_code(self.code(int(index)))

    def lookup(self, cell: str | Sequence[int] | int, metrics: Sequence[str] | None = None) -> dict[str, float]:
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
def from_frame(frame: pd.DataFrame, source: str, sha256: str, origin: dict | None = None) -> GroundTruth:
    """Build ground truth from a table with an arch-string column and metric columns."""
    mapping: dict[str, str] = {}
    for column in frame.columns:
        target = map_column(str(column))
        if target is not None and target not in mapping.values():
            mapping[str(column)] = target
    if "arch" not in mapping.values():
        raise UserError(f"{source} has no architecture-string column (looked for one of "
                        f"{', '.join(_ARCH_ALIASES)}); its columns are {list(frame.columns)}")
    metric_columns = [c for c, t in mapping.items() if t not in ("arch", "index")]
    if not metric_columns:
        raise UserError(f"{source} has no metric column named by data set and split (e.g. cifar10_test, "
                        f"CIFAR10TestAccuracy200Epochs); its columns are {list(frame.columns)}")
    arch_column = next(c for c, t in mapping.items() if t == "arch")
    codes = _codes_from_strings(frame[arch_column].astype(str).tolist())
    if len(np.unique(codes)) != len(codes):
        raise UserError(f"{source} lists some cells more than once; keep one row per cell")
    index = np.full(space.NUM_CELLS, -1, dtype=np.int64)
    index_column = next((c for c, t in mapping.items() if t == "index"), None)
    index[codes] = frame[index_column].to_numpy(np.int64) if index_column else np.arange(len(frame))
    metrics = {}
    for column in metric_columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        array = np.full(space.NUM_CELLS, np.nan)
        array[codes] = values
        array.setflags(write=False)
        metrics[mapping[column]] = array
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
                        f"is truncated or not a CSV/Parquet table; restore it or convert it again. {GET_OFFICIAL}") from None
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
            row[f"{dataset}_{quantity}"] = float(arch_results.get_metrics(dataset, split, is_random=False)["accuracy"])
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
    records = [{"index": i, "arch": a, **m} for i, a, m in rows]
    if not records:
        raise UserError(f"{source} holds no architecture records. {GET_OFFICIAL}")
    truth = from_frame(pd.DataFrame.from_records(records), source=source, sha256=sha256, origin=origin)
    truth.index[_codes_from_strings(list(all_archs))] = np.arange(len(all_archs))
    truth.__post_init__()
    return truth


def load_official_pth(path: str | Path) -> GroundTruth:
    """Read ``NAS-Bench-201-v1_0-e61699.pth`` / ``v1_1-096897.pth``.

    Uses ``torch.load(..., weights_only=False)``: the official file pickles the API's own
    classes, which current torch refuses by default.  Only load files you trust.  The file
    needs tens of GB of RAM; convert it once into a compact table.
    """
    import torch
    from nas_201_api.api_utils import ArchResults
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
    if not isinstance(blob, dict) or not {"meta_archs", "arch2infos"} <= set(blob):
        raise UserError(f"{path} is not an official NAS-Bench-201 file (no meta_archs/arch2infos). {GET_OFFICIAL}")
    archs = blob["meta_archs"]

    def rows():
        for index in tqdm(sorted(blob["arch2infos"]), desc="reading NAS-Bench-201", unit="cell", leave=False):
            info = blob["arch2infos"][index]
            metrics = _official_record(ArchResults.create_from_state_dict(info["full"]))
            if "less" in info:
                low = _official_record(ArchResults.create_from_state_dict(info["less"]))
                metrics.update({f"{k}_12ep": v for k, v in low.items() if not k.endswith(("params", "flops"))})
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
        raise UserError(f"{path} is not a NATS-Bench topology directory (no meta.pickle.pbz2). {GET_OFFICIAL}")
    digest = sha256_file(path / "meta.pickle.pbz2")
    try:
        api = nats_bench.create(str(path), "tss", fast_mode=True, verbose=False)
    except Exception as err:
        raise UserError(f"nats_bench could not open {path} ({type(err).__name__}: {err}). {GET_OFFICIAL}") from None
    present = sorted(int(p.name.split(".")[0]) for p in path.glob("[0-9]*.pickle.pbz2"))

    def rows():
        for index in tqdm(present, desc="reading NATS-Bench", unit="cell", leave=False):
            metrics: dict[str, float] = {}
            for hp, suffix in (("200", ""), ("12", "_12ep")):
                api._prepare_info(index)
                results = api.arch2infos_dict[index][hp]
                for key, value in _official_record(results).items():
                    if suffix and key.endswith(("params", "flops")):
                        continue
                    metrics[key + suffix] = value
            yield index, api.arch(index), metrics
            api.clear_params(index, None)

    return _records_to_truth(rows(), str(path), digest, {"format": "nats-tss-directory", "source": str(path),
                                                          "source_sha256": digest}, api.meta_archs)


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
    raise UserError(f"Unknown benchmark format {path.name!r}: give a .csv/.parquet table, an official .pth file "
                    f"or a NATS-Bench topology directory")


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
