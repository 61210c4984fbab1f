import numpy as np
import pytest

from bench.errors import UserError
from bench.nb201 import space

ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def test_op_and_edge_orders_are_the_reference_string_order():
    """NB201's string lists node 1's input, then node 2's (from 0, 1), then node 3's (from 0, 1, 2);
    op index i is the i-th op of the reference's ``NAS_BENCH_201`` list."""
    text = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert space.parse(text) == (0, 1, 2, 3, 4, 0)
    assert space.to_string((0, 1, 2, 3, 4, 0)) == text
    for edge, (node, source) in enumerate(space.EDGES):
        cell = [0] * 6
        cell[edge] = 3
        assert f"|nor_conv_3x3~{source}|" in space.to_string(cell).split("+")[node - 1]


def test_string_tuple_code_round_trip_for_all_cells():
    cells = space.all_cells()
    assert cells.shape == (15625, 6) and len({tuple(c) for c in cells}) == 15625
    for code in range(0, 15625, 7):
        cell = tuple(int(v) for v in cells[code])
        assert space.parse(space.to_string(cell)) == cell
        assert space.to_code(cell) == code
        assert space.from_code(code) == cell
    np.testing.assert_array_equal(space.codes_of(cells), np.arange(15625))


def test_parse_all_skip():
    assert space.parse(ALL_SKIP) == (1,) * 6


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    (" " + ALL_SKIP, "whitespace"),
    (ALL_SKIP.replace("|+|", "| + |", 1), "whitespace"),
    ("|skip_connect~0|+|skip_connect~0|skip_connect~1|", "2 node group"),
    (ALL_SKIP + "+|skip_connect~0|", "4 node group"),
    (ALL_SKIP.replace("skip_connect~1|+", "skip_conect~1|+", 1), "unknown op 'skip_conect'"),
    (ALL_SKIP.replace("skip_connect~2", "skip_connect~3"), "must read from node 2"),
    (ALL_SKIP.replace("|skip_connect~0|skip_connect~1|+", "|skip_connect~0|+", 1), "node group"),
    (ALL_SKIP.replace("skip_connect~0|+|skip_connect~0|skip", "skip_connect0|+|skip_connect~0|skip", 1),
     "lacks '~input'"),
    (ALL_SKIP.strip("|"), "must start and end"),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|conv~2|", "unknown op 'conv'"),
    ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must read from node 0"),
])
def test_parser_errors_name_the_bad_token_and_show_the_form(text, fragment):
    with pytest.raises(UserError) as info:
        space.parse(text)
    message = str(info.value)
    assert fragment in message
    assert space.EXPECTED_FORM in message


def test_parse_rejects_non_strings():
    with pytest.raises(UserError):
        space.parse(None)
    with pytest.raises(UserError):
        space.to_string((1, 2, 3))
    with pytest.raises(UserError):
        space.to_string((1, 2, 3, 4, 5, 9))


def test_isomorphism_classes(truth):
    ids = space.iso_class_ids()
    assert len(np.unique(ids)) == 6466
    # equal ids <-> equal NB201 unique strings of the third-party table
    import pandas as pd
    from bench.paths import shared_data_dir

    frame = pd.read_csv(shared_data_dir() / "nas-bench-201" / "nb201_test_accuracy.csv")
    codes = [space.to_code(space.parse(a)) for a in frame.ArchitectureString]
    theirs = pd.factorize(frame.UniqueString)[0]
    ours = ids[codes]
    pairs = set(zip(ours.tolist(), theirs.tolist()))
    assert len(pairs) == 6466  # a bijection between the two partitions
    # cells in one class have equal keys
    largest = np.bincount(ids).argmax()
    same = np.flatnonzero(ids == largest)
    assert len(same) > 1 and len({space.iso_key(space.from_code(c)) for c in same}) == 1
    # e.g. a cell whose only path is conv3x3 on 3<-0 equals itself with dead edges varied
    a = space.iso_key((0, 0, 0, 3, 0, 0))
    assert a == space.iso_key((0, 0, 2, 3, 0, 0)) == space.iso_key((4, 0, 0, 3, 0, 0))


def test_paths_and_parameter_free_counts():
    assert not space.has_path((0,) * 6)
    assert space.has_path((1,) * 6)
    assert space.has_path((0, 0, 0, 3, 0, 0))
    assert not space.has_path((3, 0, 3, 0, 0, 0))  # node 3 has only none inputs
    assert sum(not space.has_path(tuple(c)) for c in space.all_cells()) == 341
    assert space.count_parameter_free((1, 1, 1, 1, 1, 1)) == 6
    assert space.count_parameter_free((3, 2, 3, 2, 3, 4)) == 1
    np.testing.assert_array_equal(space.count_parameter_free(np.array([[0, 1, 2, 3, 4, 4], [3] * 6])), [4, 0])
    assert space.count_skip_connections(space.parse(space.EXPECTED_FORM)) == 1
    assert space.count_skip_connections((1, 1, 1, 1, 1, 1)) == 6
    assert space.count_skip_connections((0, 4, 2, 3, 0, 4)) == 0
    cells = np.array([[0, 1, 2, 3, 4, 1], [3] * 6])
    np.testing.assert_array_equal(space.count_skip_connections(cells), [2, 0])


def test_select_cell_argmax_nan_and_none_option():
    scores = np.zeros((6, 5))
    scores[:, 0] = 5.0
    scores[:, 3] = 1.0
    assert space.select_cell(scores) == (0,) * 6
    assert space.select_cell(scores, allow_none=False) == (3,) * 6
    scores[0, 0] = np.nan
    assert space.select_cell(scores)[0] == 3
    with pytest.raises(UserError):
        space.select_cell(np.full((6, 5), np.nan))
    with pytest.raises(UserError):
        space.select_cell(np.zeros((5, 5)))
