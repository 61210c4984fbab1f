import pickle

import numpy as np
import pytest
import torch

from bench import data
from bench.errors import UserError


def test_reads_the_official_layout(cifar_root):
    images, labels = data.read_cifar10(cifar_root, "train")
    assert images.shape == (50000, 3, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5000] * 10
    test_images, test_labels = data.read_cifar10(cifar_root, "test")
    assert test_images.shape == (10000, 3, 32, 32) and np.bincount(test_labels).tolist() == [1000] * 10


def test_split_is_disjoint_and_seeded():
    w, a = data.split_indices(50000, 25000, 25000, seed=3)
    assert len(np.intersect1d(w, a)) == 0 and len(w) == len(a) == 25000
    w2, a2 = data.split_indices(50000, 25000, 25000, seed=3)
    np.testing.assert_array_equal(w, w2)
    assert not np.array_equal(w, data.split_indices(50000, 25000, 25000, seed=4)[0])
    with pytest.raises(UserError):
        data.split_indices(50000, 30000, 25000, seed=0)


def test_one_epoch_is_one_pass_without_replacement():
    images = torch.arange(130, dtype=torch.uint8).view(130, 1, 1, 1).expand(130, 3, 32, 32).contiguous()
    ds = data.DeviceDataset(images, torch.arange(130))
    g = torch.Generator().manual_seed(0)
    seen = torch.cat([y for _, y in data.batches(ds, 64, g)])
    assert sorted(seen.tolist()) == list(range(130))
    assert [len(y) for _, y in data.batches(ds, 64, torch.Generator().manual_seed(0))] == [64, 64, 2]


def test_augmentation_crops_with_zero_padding_and_flips():
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[0, :, 0, :] = 255  # a white top row
    batch = image.expand(512, 3, 32, 32).contiguous()
    out = data.augment(batch, torch.Generator().manual_seed(1))
    white = (out[:, 0] > 1.5)  # normalised 255
    rows = white.any(dim=2).float().argmax(dim=1)  # first row holding white per sample
    assert set(rows.unique().tolist()) <= set(range(0, 5))  # shifted down by 0..4
    assert len(rows.unique()) == 5
    padded_zero = (out[:, 0] < -1.5).any(dim=(1, 2))  # some crops show the zero padding
    assert padded_zero.float().mean() > 0.5
    asym = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    asym[0, :, :, :8] = 255  # white left band: flips move it right
    out = data.augment(asym.expand(400, 3, 32, 32).contiguous(), torch.Generator().manual_seed(2), pad=0)
    left = (out[:, 0, 16, 0] > 1.5).float().mean()
    assert 0.35 < left < 0.65
    again = data.augment(asym.expand(400, 3, 32, 32).contiguous(), torch.Generator().manual_seed(2), pad=0)
    assert torch.equal(out, again)


def test_missing_and_corrupt_files(tmp_path, cifar_root):
    with pytest.raises(UserError, match="CIFAR-10 not found"):
        data.locate(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    source = data.locate(cifar_root)
    for name in ("test_batch", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"):
        (folder / name).write_bytes((source / name).read_bytes())
    with pytest.raises(UserError, match="data_batch_5 is missing"):
        data.read_cifar10(tmp_path, "train")
    (folder / "data_batch_5").write_bytes((source / "data_batch_5").read_bytes()[:1000])
    with pytest.raises(UserError, match="corrupt or truncated"):
        data.read_cifar10(tmp_path, "train")
    with open(folder / "data_batch_5", "wb") as handle:
        pickle.dump({"data": np.zeros((10, 100), np.uint8), "labels": [0] * 10}, handle)
    with pytest.raises(UserError, match="expected N x 3072"):
        data.read_cifar10(tmp_path, "train")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / data.TARBALL).write_bytes(b"garbage")
    with pytest.raises(UserError, match="corrupt or truncated"):
        data.locate(tmp_path / "bad")


def test_official_tarball_is_unpacked(tmp_path, cifar_root):
    import tarfile

    source = data.locate(cifar_root)
    with tarfile.open(tmp_path / data.TARBALL, "w:gz") as archive:
        for name in ("test_batch", "batches.meta"):
            archive.add(source / name, arcname=f"cifar-10-batches-py/{name}")
    images, labels = data.read_cifar10(tmp_path, "test")
    assert images.shape == (10000, 3, 32, 32)
