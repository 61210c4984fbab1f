"""Shared fixtures: the real ground-truth table, a real CIFAR-10 folder, isolated results."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import paths

SHARED = paths.shared_data_dir()


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}: tests read ../shared/data "
                    "(set BENCH_SHARED_DATA to its location)")
    return path


@pytest.fixture(scope="session")
def table_path() -> Path:
    return _require(SHARED / "nas-bench-201" / "nb201_accuracy.csv", "the NB201 accuracy table")


@pytest.fixture(scope="session")
def truth(table_path):
    from bench.nb201 import benchmark

    return benchmark.load_cached(table_path)


@pytest.fixture(scope="session")
def nats_fixture_dir() -> Path:
    return _require(SHARED / "nats-bench-fixture" / "NATS-tss-v1_0-3ffb9-simple", "the NATS-Bench fixture")


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """The project's data/ folder if CIFAR-10 is built there, else a build into a temp folder."""
    from bench import data

    root = paths.default_data_dir()
    try:
        data.locate(root)
        return root
    except Exception:
        pass
    target = tmp_path_factory.mktemp("cifar")
    builder = _require(paths.cifar_builder(), "the CIFAR-10 builder")
    subprocess.run([sys.executable, str(builder), "--out", str(target)], check=True)
    return target


@pytest.fixture(autouse=True)
def isolated_results(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BENCH_DEVICE", "cpu")
    return tmp_path / "results"


def smoke_spec(path: Path, results: Path, experiment: str = "sw", methods=("darts", "nap"), seeds=(0, 1),
               epochs: int = 2, images: int = 128, criteria=("magnitude",), select_epochs: str = "last",
               valid_size: int = 64) -> Path:
    """Write the tests' sweep spec: the smoke profile on ``images`` CIFAR-10 images per half."""
    import json

    path.write_text(f"""experiment = "{experiment}"
profile = "smoke"
methods = {json.dumps(list(methods))}
seeds = {json.dumps(list(seeds))}
results = "{results}"
[overrides]
epochs = {epochs}
weight_size = {images}
alpha_size = {images}
[select]
criteria = {json.dumps(list(criteria))}
epochs = "{select_epochs}"
valid_size = {valid_size}
""")
    return path


def run_records(run: Path) -> tuple[list, dict]:
    """What two runs must share to be equal: (epoch, alpha, cell) per epoch, and per
    (epoch, criterion) the selected cell and op scores."""
    from bench.atomic import read_jsonl

    epochs = [(r["epoch"], r["alpha"], r["cell"]) for r in read_jsonl(run / "epochs.jsonl")]
    selections = {(r["epoch"], r["criterion"]): (r["cell"], r["scores"])
                  for r in read_jsonl(run / "selections.jsonl")}
    return epochs, selections


class ConvCalls:
    """Counts the dense 2-D convolutions (module or functional, groups=1) run inside the block,
    and their output channels; depthwise ones (the box-sum pooling) are left out."""

    def __enter__(self):
        import torch.nn.functional as F
        from torch.overrides import TorchFunctionMode

        calls = self.calls = []

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is F.conv2d:
                    groups = kwargs.get("groups", args[6] if len(args) > 6 else 1)
                    if groups == 1:
                        calls.append(int(args[1].shape[0]))
                return func(*args, **kwargs)

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def truncated_cifar(cifar_root: Path, target: Path) -> Path:
    """A CIFAR-10 folder that passes the up-front check (``data.locate``) but fails to load: one
    training batch cut short, so a search fails inside, after its lock was taken."""
    from bench import data

    source = data.locate(cifar_root)
    folder = target / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for path in source.iterdir():
        (folder / path.name).symlink_to(path)
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").write_bytes((source / "data_batch_3").read_bytes()[:1000])
    return target
