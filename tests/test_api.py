"""The Python API a notebook uses, as the README's "Python API" section shows it, call by call."""
from __future__ import annotations

import numpy as np
import torch


def test_the_five_calls_of_a_notebook(tmp_path, cifar_root, table_path):
    import criteria
    from bench import score
    from bench.nb201 import benchmark, space
    from bench.report import aggregate, table
    from bench.runs import experiment
    from bench.runs.checkpoints import load_supernet
    from bench.runs.runstore import Run
    from bench.search import config

    # 1. load ground truth
    truth = benchmark.load_cached(table_path)
    best = space.from_code(int(np.nanargmax(truth.metric("cifar10_test"))))  # arrays are indexed by cell code
    assert truth.lookup(best, ["cifar10_test"])["cifar10_test"] == np.nanmax(truth.metric("cifar10_test"))
    # (a run to work on: the smoke profile, tiny)
    cfg = config.resolve("smoke").replace(epochs=1, weight_size=64, alpha_size=64, batch_size=32)
    made = experiment.search("smoke", cfg, 0, "api", data_dir=cifar_root, progress=False)
    # 2. load a run
    run = Run.open(made.path)
    assert run.is_done and [r["epoch"] for r in run.epochs()] == [1]
    # 3. compute a criterion on a checkpoint
    net = load_supernet(run, epoch=1, device=torch.device("cpu"))
    scores = criteria.compute("magnitude", net)
    assert scores.shape == (6, 5)
    # 4. score a matrix against the table
    scored = score.score_matrix(scores, truth)
    assert scored["cell"] == run.epochs()[-1]["cell"]
    assert scored["accuracies"]["cifar10_test"] == truth.lookup(space.parse(scored["cell"]),
                                                                ["cifar10_test"])["cifar10_test"]
    # 5. build a report
    exp = aggregate.load("api", truth)
    frame = table.comparison(exp, truth)
    own = frame[(frame["kind"] == "measured") & (frame["criterion"] == "search")]
    assert len(own) == 1  # the search's own (magnitude) cell at its last epoch, one seed
    assert own["cifar10_test"].iloc[0] == scored["accuracies"]["cifar10_test"]
