"""Zero-cost proxies checked by hand, and zc-pt on a tiny supernet at initialisation."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import criteria
from bench import data
from bench.errors import UserError
from bench.nb201 import space
from bench.runs.checkpoints import build_supernet
from bench.search import config
from criteria import Context, proxies
from criteria.zc_pt import Batches, rescore, supernet_forward


def _linear(rows, bias=False):
    weight = torch.tensor(rows, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return layer


def test_naswot_of_a_tiny_net_by_hand():
    net = nn.Sequential(_linear([[1, 0], [0, 1], [1, 1]]), nn.ReLU(), _linear([[1, 1, 1]]))
    x = torch.tensor([[1.0, -1.0], [-1.0, 2.0], [2.0, 1.0]])
    # ReLU inputs (1, -1, 0), (-1, 2, 1), (2, 1, 3): codes 100, 011, 111 (0 is not positive)
    # agreements: K = [[3, 0, 1], [0, 3, 2], [1, 2, 3]], det = 3 * 5 - 0 + 1 * (0 - 3) = 12
    assert proxies.code_kernel(torch.tensor([[1, 0, 0], [0, 1, 1], [1, 1, 1]])).tolist() == \
        [[3, 0, 1], [0, 3, 2], [1, 2, 3]]
    assert proxies.naswot(net, net, x, torch.zeros(3, dtype=torch.long)) == pytest.approx(math.log(12))
    # two images with the same codes: singular kernel
    same = torch.tensor([[1.0, -1.0], [2.0, -3.0], [2.0, 1.0]])
    assert proxies.naswot(net, net, same, torch.zeros(3, dtype=torch.long)) == -math.inf


def test_synflow_of_a_linear_chain_is_depth_times_the_path_sum():
    # R = 1^T |W2| |W1| 1 = [2, 1, 1] . [3, 3, 2] = 11; a bias-free chain of L layers is homogeneous
    # of degree 1 in each layer, so sum theta dR/dtheta = L R = 22; BatchNorm is bypassed
    bn = nn.BatchNorm1d(3).eval()
    bn.running_mean.fill_(5.0)
    net = nn.Sequential(_linear([[1, -2], [0, 3], [-1, 1]]), bn, _linear([[2, -1, 1]]))
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(4, 2)
    assert proxies.synflow(net, net, x, torch.zeros(4, dtype=torch.long)) == pytest.approx(22.0)
    assert all(torch.equal(a, b) and b.dtype == torch.float32 for a, b in zip(before, net.parameters()))


def test_grad_norm_by_hand():
    net = _linear([[0, 0], [0, 0]])  # softmax (0.5, 0.5): dL/dlogits = (-0.5, 0.5), dL/dW = that x (1, 0)
    value = proxies.grad_norm(net, net, torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert value == pytest.approx(math.sqrt(0.5))


def _tiny(seed=0):
    return build_supernet(config.SearchConfig(C=4, N=1), seed, torch.device("cpu"))


def test_naswot_counts_one_code_per_conv_op_in_the_supernet():
    net = _tiny()
    x = torch.randn(6, 3, 32, 32)
    weights = net.arch_weights().detach()
    with proxies.recording_relus(net) as recorder:
        supernet_forward(net, weights)(x)
    # per cell 12 convs (6 edges x 2) reading C * 32^2 / 2^s units at stage s; reductions: 4096 + 2048
    # and 2048 + 1024; head 1024.  The diagonal (an image agrees with itself) is the unit total.
    assert recorder.relus == 3 * 12 + 4 + 1
    units = 12 * (4096 + 2048 + 1024) + 4096 + 2048 + 2048 + 1024 + 1024
    assert torch.equal(recorder.kernel.diagonal(), torch.full((6,), float(units), dtype=torch.float64))
    assert all(cell.fuse_convs == type(cell).fuse_convs for cell in net.cells if hasattr(cell, "fuse_convs"))
    masked = weights.clone()
    masked[0, 3] = 0.0  # conv3x3 of edge 0 not computed: one code fewer per cell
    with proxies.recording_relus(net) as recorder:
        supernet_forward(net, masked)(x)
    assert recorder.relus == 3 * 11 + 4 + 1
    standalone = net.discretize((3, 1, 2, 0, 4, 3))  # three convs per cell
    with proxies.recording_relus(standalone) as recorder:
        standalone(x)
    assert recorder.relus == 3 * 3 + 4 + 1


@pytest.fixture(scope="module")
def slice_data(cifar_root):
    return data.load_search_data(cifar_root, torch.device("cpu"), 256, 256, split_seed=0)


def _zc(net, slice_data, seed=3, **options):
    options = {"batch_size": 16, "proposals": 2, "rescore_batches": 1, **options}
    context = Context(data=slice_data, seed=seed, options=options, valid_size=256)
    return criteria.compute("zc-pt", net, context), context.info


def test_zc_pt_decisions_scores_and_chosen_cell(slice_data):
    assert "zc-pt" in criteria.names()
    net = _tiny()
    scores, info = _zc(net, slice_data)
    assert scores.shape == (6, 5) and (scores[:, 0] == 0).all()
    assert space.to_string(space.select_cell(scores)) == info["chosen"]
    for proposal in info["proposals"]:
        assert sorted(proposal["order"]) == list(range(6))
        cell = space.as_cell(proposal["cell"])
        for decision in proposal["decisions"]:
            drops = [0.0] + [decision["unmasked"] - decision["masked"][op] for op in range(1, 5)]
            assert decision["op"] == int(np.argmax(drops)) == cell[decision["edge"]]
    chosen = info["proposals"][info["chosen_proposal"]]
    assert chosen["cell"] == info["chosen"]
    for d in chosen["decisions"]:
        drops = [d["unmasked"] - d["masked"][op] for op in range(1, 5)]
        assert scores[d["edge"], 1:] == pytest.approx(drops)
    if info["rescored"]:
        means = [r["proxy_mean"] for r in info["rescored"]]
        assert info["rescored"][int(np.argmax(means))]["cell"] == info["chosen"]
        assert len({r["cell"] for r in info["rescored"]}) == len(means) > 1
    assert info["supernet_forwards"] == 2 * 6 * 5
    # the first decision, recomputed directly: same batch, same weights, conv3x3 masked
    first = info["proposals"][0]["decisions"][0]
    x, y = Batches(slice_data.alpha.images[:256], slice_data.alpha.labels[:256], 16, 3).next()
    weights = net.arch_weights().detach().clone()
    weights[first["edge"], 3] = 0.0
    assert proxies.naswot(net, supernet_forward(net, weights), x, y) == pytest.approx(first["masked"][3])
    # the batches come from the context's seed: another seed measures the first decision on others
    other = _zc(net, slice_data, seed=4)[1]["proposals"][0]["decisions"][0]
    assert (other["edge"], other["unmasked"]) != (first["edge"], first["unmasked"])


def test_zc_pt_respects_pruned_ops_and_fixed_edges(slice_data):
    net = _tiny()
    net.prune(2, 3)
    net.fix_edge(4, 1)
    scores, info = _zc(net, slice_data, proposals=1, proxy="grad_norm")
    assert np.isnan(scores[2, 3]) and np.isfinite(scores[2, [0, 1, 2, 4]]).all()
    assert scores[4, 1] == 0.0 and np.isnan(scores[4, [0, 2, 3, 4]]).all()
    cell = space.select_cell(scores)
    assert cell[4] == 1 and cell[2] != 3 and info["chosen"] == space.to_string(cell)
    assert info["rescored"] == [] and info["standalone_forwards"] == 0  # one proposal: nothing to re-score
    assert info["batch_size"] == 16 and info["images_in_pool"] == 256
    assert sorted(info["proposals"][0]["order"]) == [0, 1, 2, 3, 5]


def test_zc_pt_with_synflow_runs_and_restores_the_supernet(slice_data):
    net = _tiny()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    scores, info = _zc(net, slice_data, proxy="synflow", proposals=1, batch_size=1000)
    assert np.isfinite(scores).all() and info["proxy"] == "synflow"
    assert info["batch_size"] == 256  # no more than the images there are
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # compute() scored a copy


def test_rescore_is_the_mean_proxy_of_the_standalone_networks(slice_data):
    net = _tiny()
    batches = Batches(slice_data.alpha.images, slice_data.alpha.labels, 16, 0)
    pairs = [batches.next(), batches.next()]
    cells = [(3, 3, 3, 3, 3, 3), (1, 0, 2, 4, 0, 1)]
    values = rescore(net, cells, proxies.naswot, pairs)
    for cell, value in zip(cells, values):
        standalone = net.discretize(cell)
        direct = [proxies.naswot(standalone, standalone, x, y) for x, y in pairs]
        assert value == pytest.approx(np.mean(direct))


@pytest.mark.parametrize("options, message", [({"proxy": "jacob"}, "naswot"),
                                              ({"proposals": 0}, "proposals"), ({"batch_size": 1}, ">= 2"),
                                              ({"rescore_batches": -1}, "rescore_batches")])
def test_zc_pt_bad_options(slice_data, options, message):
    with pytest.raises(UserError, match=message):
        _zc(_tiny(), slice_data, **options)
