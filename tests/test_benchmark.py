import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench.errors import UserError
from bench.nb201 import benchmark, space

ALL_SKIP = (1,) * 6


def test_known_values_of_the_shared_table(truth):
    c10, c100, in16 = (truth.metric(m) for m in ("cifar10_test", "cifar100_test", "ImageNet16-120_test"))
    assert round(np.nanmax(c10), 2) == 94.37
    assert (np.round(c10, 2) == 94.37).sum() == 2  # two cells tie
    assert round(np.nanmax(c100), 2) == 73.51
    assert round(np.nanmax(in16), 2) == 47.31
    assert round(np.nanmax(truth.metric("cifar10-valid_valid")), 2) == 91.61
    skip = truth.lookup(ALL_SKIP)
    headline = ("cifar10_test", "cifar100_test", "ImageNet16-120_test")
    assert tuple(round(skip[name], 2) for name in headline) == (54.30, 15.61, 16.32)
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
    ("CIFAR10TestAccuracy200Epochs", "cifar10_test"),
    ("ImageNetTestAccuracy200Epochs", "ImageNet16-120_test"),
    ("ImageNet16-120_valid_12ep", "ImageNet16-120_valid_12ep"),
    ("cifar100_valid_12ep", "cifar100_valid_12ep"),
    ("C100 Test Acc", "cifar100_test"), ("ArchitectureString", "arch"), ("UniqueString", None),
    ("index", "index"),
    ("cifar10_params", "cifar10_params"),
])
def test_column_mapping(header, expected):
    assert benchmark.map_column(header) == expected


def test_compact_table_round_trip(truth, tmp_path):
    for suffix in (".parquet", ".csv"):
        target = tmp_path / f"nb201{suffix}"
        truth.save(target)
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


def _official_dict(truth, indices, value=lambda v: v):
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
                        accs[f"{split}@0"] = value(values.get(metric + suffix, math.nan) + offset)
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


# -- tables are checked on load: every reader, one validation (check_columns) --
def _crafted(tmp_path, table_path, edit, suffix=".csv", name="t"):
    """The first four rows of the real table, three metric columns, after ``edit(frame)``."""
    columns = ["index", "arch", "cifar10_test", "cifar100_test", "cifar10-valid_valid"]
    frame = pd.read_csv(table_path, nrows=4)[columns]
    frame = frame.astype({"cifar10_test": object, "index": object})
    edit(frame)
    path = tmp_path / f"{name}{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:  # Parquet columns have one type: text if any field is text, else numbers
        for column in ("cifar10_test", "index"):
            text = frame[column].map(lambda v: isinstance(v, str)).any()
            frame[column] = frame[column].astype(str) if text else pd.to_numeric(frame[column])
        frame.to_parquet(path)
    return path


def _set(column, row, value):
    def edit(frame):
        frame.loc[row, column] = value
    return edit


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("edit, message", [
    (_set("cifar10_test", 2, "94.36%"), r"column 'cifar10_test', row 3 \(cell \|avg_pool_3x3~0\|.*'94.36%'.*"
                                        r"not a number.*without a % sign"),
    (_set("cifar100_test", 1, math.inf),
     r"column 'cifar100_test', row 2 \(cell \|nor_conv_3x3~0\|.* is inf; give the finite value"),
    (_set("cifar100_test", 0, -math.inf), r"column 'cifar100_test', row 1 .* is -inf"),
    (_set("cifar10-valid_valid", 3, 100.5),
     r"column 'cifar10-valid_valid'.*row 4 .* is 100.5: an accuracy in %"),
    (_set("index", 3, None), r"index column 'index', row 4 .* is empty; every row needs its benchmark index"),
    (_set("index", 1, 2.5), r"index column 'index', row 2 .* is 2.5"),
    (_set("index", 0, 15625), r"index column 'index', row 1 .* is 15625.*0\.\.15624 \(-1 where unknown\)"),
    (_set("index", 0, -2), r"index column 'index', row 1 .* is -2"),
    (_set("index", 3, 1), r"index column 'index' gives index 1 to rows 2 and 4"),
    (_set("arch", 3, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~3|"), r"row 4: Malformed NB201"),
])
def test_bad_values_name_column_row_and_fix(tmp_path, table_path, suffix, edit, message):
    path = _crafted(tmp_path, table_path, edit, suffix)
    with pytest.raises(UserError, match=message) as raised:
        benchmark.load(path)
    assert str(path) in str(raised.value)


def test_fractions_where_percentages_belong(tmp_path, table_path):
    def to_fractions(frame):
        frame["cifar100_test"] = frame["cifar100_test"] / 100
    path = _crafted(tmp_path, table_path, to_fractions)
    best = pd.read_csv(table_path, nrows=4)["cifar100_test"].idxmax()
    with pytest.raises(UserError, match=rf"column 'cifar100_test' \(cifar100_test\) holds fractions"
                                        rf".*at row {best + 1} \(cell .*multiply the column by 100"):
        benchmark.load(path)


def test_cells_without_a_path_may_sit_below_one_percent(tmp_path, table_path):
    """A dead cell's 0.83 % (ImageNet16-120 chance) is a percentage, not a fraction."""
    dead = space.to_string((0,) * 6)
    path = tmp_path / "dead.csv"
    path.write_text(f"arch,ImageNet16-120_test\n{dead},0.833333\n")
    assert benchmark.load(path).lookup(dead)["ImageNet16-120_test"] == pytest.approx(0.833333)


def test_an_alias_column_shadowing_the_canonical_one_is_refused(tmp_path, table_path):
    def add_alias(frame):
        frame["CIFAR10TestAccuracy200Epochs"] = 50.0
    with pytest.raises(UserError, match="columns 'cifar10_test' and 'CIFAR10TestAccuracy200Epochs' both "
                                        "map to 'cifar10_test'.*delete or rename one"):
        benchmark.load(_crafted(tmp_path, table_path, add_alias))
    with pytest.raises(UserError, match="columns 'ArchitectureString' and 'arch' both map to 'arch'"):
        benchmark.load(_crafted(tmp_path, table_path, lambda f: f.insert(0, "ArchitectureString", f["arch"]),
                                name="archs"))
    repeated = tmp_path / "repeated.csv"  # pandas renames the second header cifar10_test.1
    repeated.write_text(f"arch,cifar10_test,cifar10_test\n{space.to_string(ALL_SKIP)},54.3,54.3\n")
    with pytest.raises(UserError, match="'cifar10_test' and 'cifar10_test.1' both map"):
        benchmark.load(repeated)


def test_repeated_cells_name_both_rows(tmp_path, table_path):
    arch = pd.read_csv(table_path, nrows=1).arch[0]
    with pytest.raises(UserError, match=r"lists cell .* twice, in rows 1 and 3"):
        benchmark.load(_crafted(tmp_path, table_path, _set("arch", 2, arch)))


def test_an_empty_field_is_a_missing_value(tmp_path, table_path):
    frame = pd.read_csv(table_path, nrows=4)
    loaded = benchmark.load(_crafted(tmp_path, table_path, _set("cifar10_test", 1, None)))
    assert math.isnan(loaded.lookup(frame.arch[1])["cifar10_test"])
    assert loaded.lookup(frame.arch[2])["cifar10_test"] == pytest.approx(frame.cifar10_test[2])
    assert int(loaded.available("cifar10_test").sum()) == 3


def test_the_real_tables_load_clean(truth):
    from bench.paths import shared_data_dir

    frame = pd.read_csv(shared_data_dir() / "nas-bench-201" / "nb201_accuracy.csv", nrows=0)
    assert set(truth.origin["column_map"].values()) == set(frame.columns) - {"index", "arch"}
    for name in truth.metric_names:
        values = truth.metric(name)
        assert np.isfinite(values).all() and 0 < values.min() and values.max() <= 100, name
    foreign = benchmark.load(shared_data_dir() / "nas-bench-201" / "nb201_test_accuracy.csv")
    assert all(np.isfinite(foreign.metric(name)).all() for name in foreign.metric_names)


def test_official_pth_values_are_checked(truth, tmp_path):
    path = tmp_path / "inf.pth"
    torch.save(_official_dict(truth, (0, 11), value=lambda v: math.inf), path)
    with pytest.raises(UserError, match=rf"{path}: column 'cifar10-valid_valid', row 1 \(cell .* is inf"):
        benchmark.load(path)


@pytest.mark.parametrize("blob, message", [
    ({"meta_archs": 7, "arch2infos": {}}, "meta_archs is of type int, not the list of cell strings"),
    ({"meta_archs": ["|x~0|"], "arch2infos": {}}, r"\(meta_archs\), row 1: Malformed NB201"),
    ({"meta_archs": [], "arch2infos": [1, 2]}, "arch2infos is of type list, not a dict"),
    ({"meta_archs": [], "arch2infos": {3: {}}}, "a record under 3, which is no index into meta_archs"),
    ({"arch2infos": {0: "text"}}, "record of benchmark index 0 is not a NAS-Bench-201 result record "
                                  r"\(TypeError"),
    ({"arch2infos": {0: {"full": "/etc/passwd"}}}, "record of benchmark index 0 .*ArchResults state dicts"),
    ({"arch2infos": {0: {"full": {"arch_str": "x"}}}}, "record of benchmark index 0 .*holds no results"),
    ({"arch2infos": {0: {"full": {"all_results": 5}}}}, r"record of benchmark index 0 .*\(AssertionError"),
])
def test_official_pth_with_the_right_keys_and_the_wrong_inside(tmp_path, blob, message):
    blob = {"meta_archs": [space.to_string(space.from_code(c)) for c in range(3)], **blob}
    path = tmp_path / "odd.pth"
    torch.save(blob, path)
    with pytest.raises(UserError, match=message):
        benchmark.load(path)


def test_nats_directory_with_a_damaged_record(nats_fixture_dir, tmp_path):
    import bz2
    import pickle
    import shutil

    copy = tmp_path / nats_fixture_dir.name
    shutil.copytree(nats_fixture_dir, copy)
    (copy / "000011.pickle.pbz2").chmod(0o644)
    (copy / "000011.pickle.pbz2").write_bytes(bz2.compress(pickle.dumps({"full": "nothing here"})))
    with pytest.raises(UserError, match=r"000011.pickle.pbz2: the record of benchmark index 11 is not"):
        benchmark.load(copy)


def test_a_partial_table_converts_and_loads_again(tmp_path, table_path):
    """Cells a partial table does not list are saved with index -1 (unknown) and load again."""
    frame = pd.read_csv(table_path, nrows=3)[["arch", "cifar10_test"]]
    source = tmp_path / "partial.csv"
    frame.to_csv(source, index=False)
    benchmark.convert(source, tmp_path / "partial.parquet")
    again = benchmark.load(tmp_path / "partial.parquet")
    assert int(again.available("cifar10_test").sum()) == 3 and int((again.index >= 0).sum()) == 3
    assert again.lookup(frame.arch[2])["cifar10_test"] == pytest.approx(frame.cifar10_test[2])
