import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench import benchmark, space
from bench.errors import UserError

ALL_SKIP = (1,) * 6


def test_known_values_of_the_shared_table(truth):
    c10, c100, in16 = (truth.metric(m) for m in ("cifar10_test", "cifar100_test", "ImageNet16-120_test"))
    assert round(np.nanmax(c10), 2) == 94.37
    assert (np.round(c10, 2) == 94.37).sum() == 2  # two cells tie
    assert round(np.nanmax(c100), 2) == 73.51
    assert round(np.nanmax(in16), 2) == 47.31
    assert round(np.nanmax(truth.metric("cifar10-valid_valid")), 2) == 91.61
    skip = truth.lookup(ALL_SKIP)
    assert (round(skip["cifar10_test"], 2), round(skip["cifar100_test"], 2), round(skip["ImageNet16-120_test"], 2)) == (54.30, 15.61, 16.32)
    assert round(skip["cifar10-valid_valid"], 2) == 39.77
    assert round(truth.lookup((0,) * 6)["cifar10_test"], 2) == 10.00
    dead = np.array([not space.has_path(tuple(c)) for c in space.all_cells()])
    assert dead.sum() == 341
    np.testing.assert_allclose(c10[dead], 10.0, atol=0.01)
    np.testing.assert_allclose(c100[dead], 1.0, atol=0.01)
    np.testing.assert_allclose(in16[dead], 0.83, atol=0.01)


def test_lookups_by_string_tuple_and_index(truth, table_path):
    frame = pd.read_csv(table_path)
    for index in (0, 1, 1835, 15624):
        arch = frame.arch[index]
        by_index = truth.lookup(index)
        assert truth.lookup(arch) == by_index == truth.lookup(space.parse(arch))
        assert truth.benchmark_index(arch) == index
        assert truth.cell_of_index(index) == space.parse(arch)
        assert by_index["cifar10_test"] == pytest.approx(frame.cifar10_test[index])


def test_round_trip_index_for_all_cells(truth):
    codes = np.arange(space.NUM_CELLS)
    indices = truth.index[codes]
    assert sorted(indices.tolist()) == list(range(15625))
    for code in range(0, 15625, 97):
        assert truth.code(int(truth.index[code])) == code


def test_errors_name_what_exists(truth):
    with pytest.raises(UserError, match="cifar100_valid.*it has: .*cifar10_test"):
        truth.metric("cifar100_valid")
    with pytest.raises(UserError, match="Benchmark index 20000"):
        truth.lookup(20000)
    with pytest.raises(UserError, match="unknown op"):
        truth.lookup("|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_third_party_layout_is_mapped(truth):
    from bench.paths import shared_data_dir

    other = benchmark.load(shared_data_dir() / "nas-bench-201" / "nb201_test_accuracy.csv")
    assert set(other.metric_names) == {"cifar10_test", "cifar100_test", "ImageNet16-120_test"}
    assert other.origin["column_map"]["CIFAR10TestAccuracy200Epochs"] == "cifar10_test"
    for name in other.metric_names:
        np.testing.assert_allclose(other.metric(name), truth.metric(name), atol=1e-5)


@pytest.mark.parametrize("header, expected", [
    ("cifar10_test", "cifar10_test"), ("cifar10-valid_valid", "cifar10-valid_valid"),
    ("CIFAR10TestAccuracy200Epochs", "cifar10_test"), ("ImageNetTestAccuracy200Epochs", "ImageNet16-120_test"),
    ("ImageNet16-120_valid_12ep", "ImageNet16-120_valid_12ep"), ("cifar100_valid_12ep", "cifar100_valid_12ep"),
    ("C100 Test Acc", "cifar100_test"), ("ArchitectureString", "arch"), ("UniqueString", None), ("index", "index"),
    ("cifar10_params", "cifar10_params"),
])
def test_column_mapping(header, expected):
    assert benchmark.map_column(header) == expected


def test_compact_table_round_trip(truth, tmp_path):
    for suffix in (".parquet", ".csv"):
        target = tmp_path / f"nb201{suffix}"
        truth.save(target)
        benchmark._string_to_code.cache_clear()
        again = benchmark.load(target)
        assert again.origin["source_sha256"] == truth.sha256
        for name in truth.metric_names:
            np.testing.assert_allclose(again.metric(name), truth.metric(name), atol=1e-6, equal_nan=True)
        np.testing.assert_array_equal(again.index, truth.index)


def test_missing_truncated_and_wrong_files(tmp_path, table_path):
    with pytest.raises(UserError, match="does not exist.*convert"):
        benchmark.load(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match="empty"):
        benchmark.load(empty)
    truncated = tmp_path / "cut.parquet"
    good = tmp_path / "good.parquet"
    benchmark.load(table_path).save(good)
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or not a CSV/Parquet"):
        benchmark.load(truncated)
    no_arch = tmp_path / "noarch.csv"
    no_arch.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="no architecture-string column"):
        benchmark.load(no_arch)
    bad_pth = tmp_path / "bad.pth"
    bad_pth.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="truncated or corrupt"):
        benchmark.load(bad_pth)
    with pytest.raises(UserError, match="Unknown benchmark format"):
        other = tmp_path / "x.txt"
        other.write_text("hi")
        benchmark.load(other)


# -- the official NAS-Bench-201 .pth format, built with the nas-bench-201 package's own classes --
SEED_OFFSETS = (-0.3, 0.3)  # two seeds around each table value: their mean is the table value


def _official_dict(truth, indices):
    from nas_201_api.api_utils import ArchResults, ResultsCount

    splits = {"cifar10-valid": {"x-valid": "cifar10-valid_valid", "ori-test": "cifar10-valid_test"},
              "cifar10": {"ori-test": "cifar10_test"},
              "cifar100": {"x-test": "cifar100_test"},
              "ImageNet16-120": {"x-test": "ImageNet16-120_test"}}
    infos = {}
    for index in indices:
        arch = space.to_string(truth.cell_of_index(index))
        values = truth.lookup(index)
        records = {}
        for hp, suffix in (("200", ""), ("12", "_12ep")):
            results = ArchResults(index, arch)
            for dataset, names in splits.items():
                for seed, offset in zip((777, 888), SEED_OFFSETS):
                    count = ResultsCount(dataset, None, {0: 50.0}, {0: 1.0}, 0.5 + index * 1e-6, 80.0,
                                         {"arch_str": arch, "channel": 16, "num_cells": 5, "class_num": 10},
                                         seed, 1, None)
                    accs, losses, times = {}, {}, {}
                    for split, metric in names.items():
                        value = values.get(metric + suffix, math.nan)
                        accs[f"{split}@0"] = value + offset
                        losses[f"{split}@0"] = 1.0
                        times[f"{split}@0"] = 1.0
                    count.update_eval(accs, losses, times)
                    results.update(dataset, seed, count)
            records["full" if hp == "200" else "less"] = results.state_dict()
        infos[index] = records
    return {"meta_archs": [space.to_string(truth.cell_of_index(i)) for i in range(15625)],
            "arch2infos": infos, "evaluated_indexes": list(indices)}


def test_official_pth_reader_matches_the_table(truth, tmp_path):
    indices = (0, 11, 284, 1835)
    path = tmp_path / "NAS-Bench-201-mini.pth"
    torch.save(_official_dict(truth, indices), path)
    official = benchmark.load(path)
    assert official.origin["format"] == "nas-bench-201-pth"
    for index in indices:
        got = official.lookup(index)
        want = truth.lookup(index)
        for metric in ("cifar10_test", "cifar100_test", "ImageNet16-120_test", "cifar10-valid_valid",
                       "cifar10-valid_test", "cifar10_test_12ep"):
            assert got[metric] == pytest.approx(want[metric], abs=1e-6), (index, metric)
        assert got["cifar10_params"] == pytest.approx(0.5 + index * 1e-6)
    assert math.isnan(official.lookup(5)["cifar10_test"])  # not in the dict


def test_nats_directory_reader_matches_the_table(truth, nats_fixture_dir, tmp_path):
    nats = benchmark.load(nats_fixture_dir)
    assert nats.origin["format"] == "nats-tss-directory"
    for index in (0, 11, 284):
        got, want = nats.lookup(index), truth.lookup(index)
        for metric in ("cifar10_test", "cifar100_test", "ImageNet16-120_test", "cifar10-valid_valid"):
            assert got[metric] == pytest.approx(want[metric], abs=1e-5)
        assert got["cifar100_valid"] > 0 and got["cifar10_params"] > 0
    assert nats.lookup(0)["cifar10_params"] == pytest.approx(0.129306, abs=1e-6)
    target = tmp_path / "nats.parquet"
    assert not benchmark.convert(nats_fixture_dir, target).origin.get("reused")
    assert benchmark.convert(nats_fixture_dir, target).origin.get("reused")  # not read twice
    again = benchmark.load(target)
    assert again.lookup(11)["cifar100_valid"] == pytest.approx(nats.lookup(11)["cifar100_valid"])
    assert again.origin["format"] == "nats-tss-directory"
