"""Parameter counts and FLOPs of stand-alone cells, as NAS-Bench-201 counts them (bench.nets.cellcost)."""
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.errors import UserError
from bench.nb201 import space
from bench.nets import cellcost
from bench.nets.cells import CellNetwork

# The network around the cell at C=16, N=5, 32x32, 10 classes, counted by hand.
STEM_P = 3 * 16 * 9 + 2 * 16                                   # conv3x3 3->16, BN(16)
REDUCTION_P = [9 * c * 2 * c + 2 * 2 * c                       # conv_a 3x3 stride 2 + BN
               + 9 * 2 * c * 2 * c + 2 * 2 * c                 # conv_b 3x3 + BN
               + c * 2 * c for c in (16, 32)]                  # shortcut 1x1 after avg-pooling
HEAD_P = 2 * 64 + 64 * 10 + 10                                 # BN(64), linear 64->10 with bias
BASE_P = STEM_P + sum(REDUCTION_P) + HEAD_P
STEM_F = 3 * 16 * 9 * 32 * 32
REDUCTION_F = [(9 * c * 2 * c + 9 * 2 * c * 2 * c + c * 2 * c) * (32 // (2 * s)) ** 2
               for s, c in ((1, 16), (2, 32))]                 # outputs 16x16, then 8x8
HEAD_F = 64 * 10 + 10
BASE_F = STEM_F + sum(REDUCTION_F) + HEAD_F
STAGES = ((16, 32), (32, 16), (64, 8))                         # (channels, side) of the three stages


def conv_edge(kernel):
    """(params, multiply-adds) that one conv edge adds over the 15 cells: conv without bias + affine BN."""
    params = sum(5 * (kernel * kernel * c * c + 2 * c) for c, _ in STAGES)
    flops = sum(5 * kernel * kernel * c * c * side * side for c, side in STAGES)
    return params, flops


@pytest.mark.parametrize("cell, convs3, convs1", [
    ((1,) * 6, 0, 0),                  # all skip: the network around the cell only
    ((3,) * 6, 6, 0),                  # all conv3x3 (NB201: 1.53 MB, ~220 MFLOPs)
    ((3, 2, 4, 0, 2, 1), 1, 2),        # mixed: pool, none and skip add nothing
])
def test_counts_equal_the_hand_arithmetic(cell, convs3, convs1):
    params = BASE_P + convs3 * conv_edge(3)[0] + convs1 * conv_edge(1)[0]
    flops = BASE_F + convs3 * conv_edge(3)[1] + convs1 * conv_edge(1)[1]
    assert cellcost.cell_cost(cell) == {"params_m": params / 1e6, "flops_m": flops / 1e6}
    assert cellcost.cell_cost(space.to_string(cell)) == cellcost.cell_cost(cell)


def test_paper_values():
    """NB201 (Dong & Yang, ICLR 2020), Sec. 3: all-conv3x3 1.53 MB / 220 M FLOPs; parameter-free 0.07 MB."""
    conv = cellcost.cell_cost((3,) * 6)
    assert round(conv["params_m"], 2) == 1.53 and round(conv["flops_m"]) == 220
    for op in (0, 1, 4):
        assert round(cellcost.cell_cost((op,) * 6)["params_m"], 2) == 0.07


@pytest.mark.parametrize("index", [0, 11, 284])
def test_match_the_official_records(nats_fixture_dir, index):
    """The official file's params and flops (6 significant decimals, in M), within one parameter/MAC."""
    from bench.nb201 import benchmark

    official = benchmark.load_cached(nats_fixture_dir)
    cell = official.cell_of_index(index)
    record = official.lookup(index)
    for dataset, classes in (("cifar10", 10), ("cifar10-valid", 10), ("cifar100", 100)):
        cost = cellcost.cell_cost(cell, num_classes=classes)
        assert cost["params_m"] == pytest.approx(record[f"{dataset}_params"], abs=1e-6)
        assert cost["flops_m"] == pytest.approx(record[f"{dataset}_flops"], abs=1e-6)


def test_multiply_adds_agree_with_torch_flop_counter():
    """torch counts 2 FLOPs per multiply-add and no bias; NB201 adds the classifier's bias.
    The cell has no pooling, which torch would count (a depthwise conv) and NB201 does not."""
    cell = (3, 2, 1, 3, 0, 2)
    net = CellNetwork(cell, C=4, N=1).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, 32, 32))
    assert counter.get_total_flops() // 2 + 10 == cellcost.multiply_adds(net, (1, 3, 32, 32))
    assert cellcost.multiply_adds(net, (2, 3, 32, 32)) == cellcost.multiply_adds(net, (1, 3, 32, 32))


def test_memoised_and_side_effect_free(monkeypatch):
    """The first call for a (cell, classes) pair builds one network, later calls none; the caller's
    random state is untouched, and changing a returned dict changes no later answer."""
    from bench.nets import cells

    built = []
    real = cells.CellNetwork
    monkeypatch.setattr(cells, "CellNetwork", lambda *a, **k: built.append(1) or real(*a, **k))
    cell = (2, 3, 0, 4, 1, 2)
    state = torch.random.get_rng_state()
    first = cellcost.cell_cost(cell, num_classes=7)  # 7 classes: no other test asks for them
    assert torch.equal(state, torch.random.get_rng_state()) and len(built) == 1
    params = first["params_m"]
    first["params_m"] = -1.0
    again = cellcost.cell_cost(np.array(cell), num_classes=7)
    assert len(built) == 1 and again["params_m"] == params > 0


@pytest.mark.parametrize("cell, classes, message", [
    ("|nor_conv_3x3~0|", 10, "Malformed NB201 cell string"),
    ((3, 3, 3), 10, "six op indices"),
    ((3,) * 6, 0, "num_classes must be a positive integer"),
    ((3,) * 6, 2.5, "num_classes must be a positive integer"),
])
def test_bad_input(cell, classes, message):
    with pytest.raises(UserError, match=message):
        cellcost.cell_cost(cell, num_classes=classes)


def test_agrees_with_the_benchmark_table(nats_fixture_dir, truth):
    from bench.nb201 import benchmark

    official = benchmark.load_cached(nats_fixture_dir)
    assert official.metric("cifar10_params")[official.code(284)] == pytest.approx(0.101306)
    assert cellcost.agrees_with(official, official.cell_of_index(284)) is True
    assert cellcost.agrees_with(official, official.cell_of_index(11), tolerance=1e-6) is True
    assert cellcost.agrees_with(official, official.cell_of_index(1)) is None  # not in the fixture
    assert cellcost.agrees_with(truth, (3,) * 6) is None  # the shared table has no costs
    shifted = {**official.metrics, "cifar10_flops": official.metrics["cifar10_flops"] + 0.01}
    damaged = benchmark.GroundTruth(shifted, official.index, "damaged", "0")
    assert cellcost.agrees_with(damaged, official.cell_of_index(284)) is False
