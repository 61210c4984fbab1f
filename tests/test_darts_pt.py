"""DARTS-PT as published: the spec examples/darts-pt.toml, its supernets and Algorithm 1 (small version)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import data
from bench.nb201 import space
from bench.runs import sweep
from bench.runs.checkpoints import load_supernet
from bench.runs.runstore import Run
from bench.search import config
from criteria import Context
from criteria.darts_pt import MASK_TEST, PROJECTION, ValidQueue, deviations

SPEC = Path(__file__).resolve().parent.parent / "examples" / "darts-pt.toml"


def test_spec_trains_darts_pt_supernets_and_the_blank_recipe():
    """blank-201.sh / darts-201.sh: train_search.py's defaults (C=16, N=5, 100 epochs, batch 64, SGD 0.025
    cosine to 1e-3, momentum 0.9, wd 3e-4, no nesterov, clip 5; Adam 3e-4 (0.5, 0.999) wd 1e-3; the alpha step
    before the weight step; 25k/25k), alpha frozen for blank; then darts-pt-proj as published."""
    jobs = {job.method: job for job in sweep.expand(sweep.load_spec(SPEC))}
    assert set(jobs) == {"darts", "darts-fix-alpha"}
    recipe = {"C": 16, "N": 5, "epochs": 100, "batch_size": 64, "w_lr": 0.025, "w_lr_min": 0.001,
              "w_momentum": 0.9, "w_weight_decay": 3e-4, "w_nesterov": False, "grad_clip": 5.0, "a_lr": 3e-4,
              "a_beta1": 0.5, "a_beta2": 0.999, "a_weight_decay": 1e-3, "step_order": "alpha-first",
              "order": "first",
              "weight_size": 25000, "alpha_size": 25000, "relaxation": "softmax", "affine": False,
              "track_running_stats": True}
    for method, job in jobs.items():
        cfg = job.config
        assert {k: getattr(cfg, k) for k in recipe} == recipe, method
        assert cfg.freeze_alpha == (method == "darts-fix-alpha")
        assert cfg.epochs % cfg.checkpoint_every == 0  # the epoch-100 checkpoint is kept
        assert job.select["criteria"] == ["darts-pt-proj"] and job.select["epochs"] == "last"
        assert job.select["valid_size"] == 0  # the whole alpha half
    options = {k.split(".", 1)[1]: v for k, v in jobs["darts"].select["options"].items()}
    assert options == {"proj_intv": PROJECTION["proj_intv"], "tune_steps": 0}


def test_spec_small_version_runs_algorithm_1_end_to_end(cifar_root, tmp_path):
    """The spec at tiny sizes (C=4, N=1, 2 epochs, 64 + 64 images): both supernets, then the projection
    with its published settings: 25 tuning epochs, 6 decisions, 30 mask tests over the whole alpha half."""
    spec = sweep.load_spec(SPEC)
    spec.update(seeds=[0], results=str(tmp_path / "results"),
                overrides={"C": 4, "N": 1, "epochs": 2, "weight_size": 64, "alpha_size": 64})
    for job in sweep.expand(spec):
        assert sweep.run_job(job, threads=1, data_dir=str(cifar_root))["status"] == "done"
        run = Run(job.run_path)
        (record,) = [r for r in run.selections() if r["criterion"] == "darts-pt-proj"]
        info = record["info"]
        assert record["epoch"] == 2 and info["tune_epochs"] == 25
        assert [d["tune_epoch"] for d in info["decisions"]] == [0, 5, 10, 15, 20, 24]
        assert sorted(d["edge"] for d in info["decisions"]) == list(range(6))
        assert info["evaluations"] == 30 and info["valid_images"] == info["alpha_half_images"] == 64
        published = (64, "official", "train", "acc")
        assert (info["batch_size"], info["transform"], info["bn_mode"], info["crit"]) == published
        assert info["deviations"] == [] and info["as_published"]
        assert record["cell"] == space.to_string(info["final_cell"])
        initial = load_supernet(run, 0, torch.device("cpu")).alpha.detach()
        moved = not torch.equal(torch.tensor(info["alpha_after"]), initial)
        assert moved == (job.method == "darts")  # blank-proj: alpha never trains


def _context(alpha, valid_size=None, seed=0):
    return Context(data=data.SearchData(alpha, alpha, None, np.arange(len(alpha)), np.arange(len(alpha))),
                   seed=seed, valid_size=valid_size)


def test_official_queue_draws_a_fresh_shuffle_and_augmentation_per_evaluation(cifar_root):
    """As ``infer(valid_queue)`` iterating a SubsetRandomSampler over the training transform: every pass
    differs, the same seed replays the same passes, and a pass covers each image once."""
    alpha = data.load_search_data(cifar_root, torch.device("cpu"), 128, 128, split_seed=0).alpha
    queues = [ValidQueue(_context(alpha, 100), 64, "official", stream=1) for _ in range(2)]
    first, second = ([list(q.draw()) for _ in range(2)] for q in queues)
    assert [len(y) for _, y in first[0]] == [64, 36]
    for a, b in zip(first, second):  # replayed exactly
        assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    labels = [torch.cat([y for _, y in draw]) for draw in first]
    assert not torch.equal(labels[0], labels[1])  # another order
    for draw in labels:  # the same 100 images
        assert torch.equal(torch.bincount(draw, minlength=10),
                           torch.bincount(alpha.labels[:100], minlength=10))
    plain = ValidQueue(_context(alpha, 100), 64, "plain", stream=1)
    a, b = list(plain.draw()), list(plain.draw())
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    assert torch.equal(a[0][1], alpha.labels[:64])
    assert (queues[0].draws, plain.draws) == (2, 2)


@pytest.mark.parametrize("size, expected", [(None, 128), (0, 128), (500, 128), (32, 32)])
def test_validation_size_and_what_the_record_calls_a_deviation(cifar_root, size, expected):
    alpha = data.load_search_data(cifar_root, torch.device("cpu"), 128, 128, split_seed=0).alpha
    queue = ValidQueue(_context(alpha, size or None), 64, "official", stream=1)
    assert (queue.images, queue.half) == (expected, 128)
    published = deviations({**MASK_TEST, **PROJECTION}, queue)
    assert published == ([] if expected == 128 else ["validation subset: 32 of the 128 alpha-half images "
                                                    "(published: all)"])
    options = {**MASK_TEST, **PROJECTION, "batch_size": 256, "masks_together": 4, "tune_steps": 100}
    changed = deviations(options, ValidQueue(_context(alpha), 256, "official", stream=1))
    assert changed == ["batch_size=256 (published: 64)", "tune_steps=100 (published: 0)"]


def test_darts_pt_options_are_checked_before_any_work(cifar_root):
    import criteria
    from bench.errors import UserError
    from bench.runs.checkpoints import build_supernet

    alpha = data.load_search_data(cifar_root, torch.device("cpu"), 64, 64, split_seed=0).alpha
    net = build_supernet(config.SearchConfig(C=4, N=1), 0, torch.device("cpu"))
    for option, value, message in (("transform", "flip", "transform"), ("batch_size", "0", "batch_size"),
                                   ("crit", "f1", "crit"), ("bn_mode", "both", "bn_mode"),
                                   ("masks_together", "-1", "masks_together")):
        ctx = _context(alpha)
        ctx.options = {option: value}
        with pytest.raises(UserError, match=message):
            criteria.compute("darts-pt-oneshot", net, ctx)
