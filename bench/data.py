"""CIFAR-10 for supernet search: official python layout, weight/alpha split, on-device augmentation.

Reads ``cifar-10-batches-py/`` (or unpacks the official ``cifar-10-python.tar.gz`` into a
cache beside it), validates shapes and labels, and keeps the whole set on the device as
uint8.  Batches are augmented on the device as in the NB201 reference code: random crop
32 with zero padding 4 and a horizontal flip, then normalisation with the CIFAR-10 mean
and std; both the weight and the alpha half get the training augmentation (``docs/criteria.md``
§4).  An epoch is one pass over the weight half without replacement; alpha batches come
from passes over the alpha half, without replacement within a pass.
"""
from __future__ import annotations

import hashlib
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from bench.errors import UserError
from bench.paths import cifar_builder

MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
"""Normalisation of the NB201 reference code (AutoDL)."""
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
TARBALL = "cifar-10-python.tar.gz"
SOURCE = "CIFAR-10 training batches (cifar-10-batches-py/data_batch_1..5)"
"""How a run's config.json names its data: by this and the SHA-256, never by a machine path."""


def _how_to_get(root: Path) -> str:
    builder = cifar_builder()
    local = (f" On this workplace: `python {builder} --out {root}` (or `make data`)." if builder.exists()
             else "")
    return (f"Put the official CIFAR-10 python version (https://www.cs.toronto.edu/~kriz/{TARBALL}) "
            f"into {root}, as the tarball or unpacked as {root / 'cifar-10-batches-py'}.{local}")


def locate(root: str | Path) -> Path:
    """The ``cifar-10-batches-py`` folder under ``root``, unpacking the official tarball if needed."""
    root = Path(root)
    for candidate in (root / "cifar-10-batches-py", root):
        if (candidate / TEST_FILE).exists():
            return candidate
    tarball = root / TARBALL
    if tarball.exists():
        try:
            with tarfile.open(tarball, "r:gz") as archive:
                archive.extractall(root, filter="data")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise UserError(f"{tarball} is corrupt or truncated ({err}). Download it again. "
                            f"{_how_to_get(root)}") from None
        return root / "cifar-10-batches-py"
    raise UserError(f"CIFAR-10 not found under {root}. {_how_to_get(root)}")


def _read_batch(path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        raise UserError(f"CIFAR-10 file {path} is missing. {_how_to_get(root)}")
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except Exception as err:
        raise UserError(f"CIFAR-10 file {path} is corrupt or truncated ({type(err).__name__}: {err}). "
                        f"{_how_to_get(root)}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise UserError(f"CIFAR-10 file {path} has data of shape {data.shape} and {len(labels)} labels; "
                        f"expected N x 3072 and N labels. {_how_to_get(root)}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"CIFAR-10 file {path} has labels outside 0..9. {_how_to_get(root)}")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of the official ``train`` (50k) or ``test`` (10k) set."""
    folder = locate(root)
    files = TRAIN_FILES if split == "train" else (TEST_FILE,)
    parts = [_read_batch(folder / name, Path(root)) for name in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    expected = 50000 if split == "train" else 10000
    if len(images) != expected:
        raise UserError(f"CIFAR-10 {split} set under {folder} has {len(images)} images, expected {expected}")
    return images, labels


def split_indices(n: int, weight_size: int, alpha_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint weight and alpha index sets of the given sizes, the same for a given seed.

    At paper size (25k/25k) this is a seeded random halving of the 50k train set (the
    reference uses a fixed index file; darts-pt the contiguous halves)."""
    if weight_size + alpha_size > n or min(weight_size, alpha_size) <= 0:
        raise UserError(f"weight ({weight_size}) + alpha ({alpha_size}) subset sizes must be positive "
                        f"and at most {n}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:weight_size]), np.sort(order[weight_size:weight_size + alpha_size])


@dataclass
class DeviceDataset:
    """Images (uint8, N x 3 x 32 x 32) and labels kept on one device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def to_device(images: np.ndarray, labels: np.ndarray, device: torch.device) -> DeviceDataset:
    return DeviceDataset(torch.from_numpy(np.ascontiguousarray(images)).to(device),
                         torch.from_numpy(labels).to(device))


def normalize(batch_uint8: torch.Tensor) -> torch.Tensor:
    x = batch_uint8.float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(batch_uint8: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of a uint8 batch, then normalise."""
    b, _, h, w = batch_uint8.shape
    device = batch_uint8.device
    padded = torch.nn.functional.pad(batch_uint8, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=device)
    flip = torch.rand(b, generator=generator, device=device) < 0.5
    rows = (dy[:, None] + torch.arange(h, device=device)[None, :])[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=device)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    batch = torch.arange(b, device=device)[:, None, None, None]
    channel = torch.arange(3, device=device)[None, :, None, None]
    return normalize(padded[batch, channel, rows, cols])


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The RNG of one epoch: derived from (seed, epoch) so a resumed run replays it exactly."""
    return torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(epoch) + 1)


def batches(data: DeviceDataset, batch_size: int, generator: torch.Generator,
            train_augment: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``data`` without replacement, shuffled by ``generator`` (last batch may be short)."""
    order = torch.randperm(len(data), generator=generator, device=data.labels.device)
    for start in range(0, len(data), batch_size):
        idx = order[start:start + batch_size]
        images = data.images[idx]
        yield (augment(images, generator) if train_augment else normalize(images)), data.labels[idx]


def endless_batches(data: DeviceDataset, batch_size: int,
                    generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented batches from successive passes over ``data`` (for the alpha queue)."""
    while True:
        yield from batches(data, batch_size, generator)


def eval_batches(data: DeviceDataset, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Unaugmented batches in order (evaluation)."""
    for start in range(0, len(data), batch_size):
        yield normalize(data.images[start:start + batch_size]), data.labels[start:start + batch_size]


@dataclass
class SearchData:
    """The weight half, the alpha half and the test set, on the device."""

    weight: DeviceDataset
    alpha: DeviceDataset
    test: DeviceDataset | None
    weight_indices: np.ndarray
    alpha_indices: np.ndarray
    train_sha256: str = ""
    """SHA-256 of the decoded 50k training images and labels (the same for tarball and folder)."""


def load_search_data(root: str | Path, device: torch.device, weight_size: int = 25000,
                     alpha_size: int = 25000, split_seed: int = 0, with_test: bool = False,
                     test_size: int | None = None) -> SearchData:
    images, labels = read_cifar10(root, "train")
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    w_idx, a_idx = split_indices(len(images), weight_size, alpha_size, split_seed)
    test = None
    if with_test:
        t_images, t_labels = read_cifar10(root, "test")
        if test_size is not None:
            t_images, t_labels = t_images[:test_size], t_labels[:test_size]
        test = to_device(t_images, t_labels, device)
    return SearchData(to_device(images[w_idx], labels[w_idx], device),
                      to_device(images[a_idx], labels[a_idx], device),
                      test, w_idx, a_idx, digest.hexdigest())


def fixed_batches(data: DeviceDataset, size: int | None,
                  batch_size: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``size`` images (all if None) of ``data``, normalised, in fixed batches.

    Built once and reused, so every masked evaluation of a criterion sees the same images."""
    n = len(data) if size is None else min(int(size), len(data))
    if n <= 0:
        raise UserError(f"validation subset size must be positive, got {size}")
    return [(normalize(data.images[s:min(s + batch_size, n)]), data.labels[s:min(s + batch_size, n)])
            for s in range(0, n, batch_size)]
