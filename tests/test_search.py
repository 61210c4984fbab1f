"""DARTS search on real CIFAR-10 slices: determinism, resume, both orders, the V2 hypergradient."""
import pytest
import torch
import torch.nn.functional as F

from bench import data
from bench.errors import UserError
from bench.runs import experiment
from bench.runs.checkpoints import build_supernet, load_supernet
from bench.runs.experiment import run_search
from bench.runs.runstore import Run
from bench.search import config
from bench.search.steps import make_optimizers, unrolled_alpha_gradient

TINY = dict(C=4, N=1, epochs=3, weight_size=256, alpha_size=256, batch_size=64)


@pytest.fixture(scope="module")
def tiny_data(cifar_root):
    return data.load_search_data(cifar_root, torch.device("cpu"), 256, 256, split_seed=0)


def _run(cfg, tmp_path, name, tiny_data, hooks=None, resume=True):
    run = Run(tmp_path / name)
    run.start({"config": cfg.to_dict(), "seed": 0, "profile": "test"})
    net = run_search(cfg, 0, run, tiny_data, torch.device("cpu"), hooks=hooks, progress=False, resume=resume)
    return run, net


def test_same_seed_same_alphas_and_cells(tmp_path, cifar_root):
    cfg = config.resolve("smoke")
    a = experiment.search("smoke", cfg, 0, "a", data_dir=cifar_root, progress=False)
    b_run = Run(tmp_path / "other")
    b = experiment.search("smoke", cfg, 0, "b", data_dir=cifar_root, progress=False, run=b_run)
    ea, eb = a.epochs(), b.epochs()
    assert len(ea) == cfg.epochs and a.is_done
    assert [r["alpha"] for r in ea] == [r["alpha"] for r in eb]
    assert [r["cell"] for r in ea] == [r["cell"] for r in eb]
    assert "accuracies" not in ea[-1]  # scored at read time, against the table a reader names
    from bench import score
    from bench.nb201 import benchmark

    scored = score.score_epoch(ea[-1], benchmark.load_cached(None))
    assert scored["cell"] == ea[-1]["cell"] and scored["accuracies"]["cifar10_test"] > 10
    assert set(scored["accuracies"]) == {
        "cifar10_test",
        "cifar100_test",
        "ImageNet16-120_test",
        "cifar10-valid_valid",
    }
    # a finished run is not re-run
    before = a.epochs_file.stat().st_mtime_ns
    experiment.search("smoke", cfg, 0, "a", data_dir=cifar_root, progress=False)
    assert a.epochs_file.stat().st_mtime_ns == before


class Kill(Exception):
    pass


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, tiny_data):
    cfg = config.SearchConfig(**{**TINY, "epochs": 4})
    _, full = _run(cfg, tmp_path, "full", tiny_data)

    def kill_after_2(record):
        if record["epoch"] == 2:
            raise Kill()

    with pytest.raises(Kill):
        _run(cfg, tmp_path, "killed", tiny_data, hooks=[kill_after_2])
    run = Run(tmp_path / "killed")
    assert [r["epoch"] for r in run.epochs()] == [1, 2]
    # a partial line left by a kill mid-write is ignored
    with open(run.epochs_file, "ab") as handle:
        handle.write(b'{"epoch": 3, "trunc')
    _, resumed = _run(cfg, tmp_path, "killed", tiny_data)
    torch.testing.assert_close(resumed.alpha, full.alpha, rtol=0, atol=0)
    assert [r["epoch"] for r in run.epochs()] == [1, 2, 3, 4]
    for name, tensor in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    reloaded = load_supernet(run, device=torch.device("cpu"))
    torch.testing.assert_close(reloaded.alpha, full.alpha, rtol=0, atol=0)


def test_corrupt_newest_checkpoint_falls_back(tmp_path, tiny_data):
    cfg = config.SearchConfig(**{**TINY, "epochs": 2})
    run, _ = _run(cfg, tmp_path, "r", tiny_data)
    newest = run.checkpoint_file(2)
    newest.write_bytes(newest.read_bytes()[:100])
    assert run.last_good_checkpoint()[0] == 1


@pytest.mark.parametrize("order", ["first", "second"])
def test_both_orders_reduce_validation_loss(tmp_path, tiny_data, order):
    cfg = config.SearchConfig(**{**TINY, "epochs": 5}, order=order, w_lr=0.05, a_lr=3e-3)
    run, net = _run(cfg, tmp_path, order, tiny_data)
    valid = [r["valid_loss"] for r in run.epochs()]
    assert valid[-1] < valid[0] - 0.02, valid
    assert not torch.allclose(net.alpha, build_supernet(cfg, 0, torch.device("cpu")).alpha)


def test_second_order_hypergradient_matches_finite_differences():
    torch.manual_seed(0)
    cfg = config.SearchConfig(C=2, N=1, w_weight_decay=5e-4)
    net = build_supernet(cfg, 0, torch.device("cpu")).double().train()
    with torch.no_grad():
        net.alpha.normal_(0, 0.5)
    w_opt, _ = make_optimizers(net, cfg)
    g = torch.Generator().manual_seed(1)
    train = (
        torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64),
        torch.randint(0, 10, (8,), generator=g),
    )
    valid = (
        torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64),
        torch.randint(0, 10, (8,), generator=g),
    )
    # give the optimiser a momentum buffer, as mid-training
    F.cross_entropy(net(train[0]), train[1]).backward()
    w_opt.step()
    w_opt.zero_grad()
    lr = 0.1
    # DARTS's radius 0.01/||v|| is coarse for a 2-channel net whose BN sees 8 images; a small
    # radius checks the algebra, the default radius is checked for direction below
    grad, _ = unrolled_alpha_gradient(net, w_opt, lr, train, valid, radius_scale=1e-5)
    coarse, _ = unrolled_alpha_gradient(net, w_opt, lr, train, valid)

    from torch.func import functional_call

    names = [n for n, _ in net.named_parameters() if n != "alpha"]
    params = dict(net.named_parameters())
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    momentum = {n: w_opt.state[params[n]]["momentum_buffer"] for n in names}

    def unrolled_val_loss(alpha):
        p = {n: params[n].detach().clone().requires_grad_() for n in names}
        loss = F.cross_entropy(functional_call(net, ({**p, "alpha": alpha}, buffers), (train[0],)), train[1])
        grads = torch.autograd.grad(loss, [p[n] for n in names])
        w_prime = {n: p[n] - lr * (0.9 * momentum[n] + gr + 5e-4 * p[n]) for n, gr in zip(names, grads)}
        return F.cross_entropy(
            functional_call(net, ({**w_prime, "alpha": alpha}, buffers), (valid[0],)), valid[1]
        )

    base = net.alpha.detach().clone()
    numeric = torch.zeros_like(base)
    h = 1e-6
    for e in range(6):
        for o in range(5):
            plus, minus = base.clone(), base.clone()
            plus[e, o] += h
            minus[e, o] -= h
            numeric[e, o] = (unrolled_val_loss(plus).item() - unrolled_val_loss(minus).item()) / (2 * h)
    cosine = F.cosine_similarity(grad.flatten(), numeric.flatten(), dim=0)
    assert cosine > 0.999, cosine
    torch.testing.assert_close(grad, numeric, rtol=2e-2, atol=2e-5)
    # the first-order gradient alone is clearly different: the second-order term matters here
    first = torch.autograd.grad(F.cross_entropy(net(valid[0]), valid[1]), [net.alpha])[0]
    assert F.cosine_similarity(first.flatten(), numeric.flatten(), dim=0) < cosine - 0.01
    assert F.cosine_similarity(coarse.flatten(), numeric.flatten(), dim=0) > 0


def test_non_finite_loss_stops_with_epoch_and_step_and_keeps_checkpoints(tmp_path, tiny_data, monkeypatch):
    from bench.search import loop
    from bench.search.steps import NonFiniteLoss

    real = loop.cosine_lr
    monkeypatch.setattr(loop, "cosine_lr", lambda cfg, epoch: real(cfg, epoch) if epoch == 0 else 1e12)
    cfg = config.SearchConfig(**{**TINY, "epochs": 3}, grad_clip=0.0)
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step \d+.*--set w_lr=.*--restart-from"):
        _run(cfg, tmp_path, "nan", tiny_data)
    run = Run(tmp_path / "nan")
    assert [r["epoch"] for r in run.epochs()] == [1]
    assert run.last_good_checkpoint()[0] == 1 and not run.checkpoint_file(2).exists()


def test_checkpoints_keep_every_kth_and_the_last(tmp_path, tiny_data):
    cfg = config.SearchConfig(
        **{**TINY, "epochs": 5, "weight_size": 64, "alpha_size": 64}, checkpoint_every=2
    )
    run, _ = _run(cfg, tmp_path, "keep", tiny_data)
    assert sorted(p.name for p in run.checkpoint_dir.glob("*.pt")) == [
        "epoch-0002.pt",
        "epoch-0004.pt",
        "epoch-0005.pt",
    ]


def test_fast_alpha_step_equals_the_naive_one():
    from bench.search.steps import alpha_step, weight_step

    cfg = config.SearchConfig(C=4, N=1)
    g = torch.Generator().manual_seed(3)
    x, y = (
        torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64),
        torch.randint(0, 10, (8,), generator=g),
    )
    results = {}
    for impl in ("naive", "fast"):
        net = build_supernet(cfg.replace(implementation=impl), 0, torch.device("cpu")).double().train()
        w_opt, a_opt = make_optimizers(net, cfg)
        weight_step(net, w_opt, x, y, 5.0)
        alpha_step(net, a_opt, x, y)
        # the reference computed weight gradients in the alpha step and dropped them; the fast
        # steps freeze what they do not train for the step only
        assert all(p.requires_grad for p in net.weight_parameters()) and net.alpha.requires_grad
        assert net.alpha.grad is not None
        if impl == "naive":
            assert all(p.grad is None for p in net.weight_parameters())
        results[impl] = net
    torch.testing.assert_close(results["fast"].alpha, results["naive"].alpha, rtol=1e-9, atol=1e-12)
    for (name, a), b in zip(results["fast"].state_dict().items(), results["naive"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_bf16_precision_trains_under_autocast_and_agrees_with_fp32(tmp_path, tiny_data):
    """``precision=bf16`` (meant for GPUs) runs the same search code; logits come back in fp32."""
    cfg = config.SearchConfig(**{**TINY, "epochs": 1}, precision="bf16")
    run, net = _run(cfg, tmp_path, "bf16", tiny_data)
    record = run.epochs()[0]
    assert net.precision == "bf16" and 0 < record["train_loss"] < 10 and record["valid_acc"] > 0
    x = data.normalize(tiny_data.alpha.images[:32])
    net.train()
    low = net(x)
    net.precision = "fp32"
    full = net(x)
    assert low.dtype == torch.float32
    assert (low - full).abs().max() < 0.05 * full.abs().max() and not torch.equal(low, full)


def test_a_new_field_at_its_neutral_value_keeps_run_ids_and_resumes_old_runs(tmp_path):
    from bench.runs.runstore import run_id

    cfg = config.SearchConfig(**TINY)
    newer = ("precision", "hessian_every", "hessian_images")
    old_name = {new: old for old, new in config.RENAMED.items()}
    old_config = {old_name.get(k, k): v for k, v in cfg.to_dict().items()
                  if k not in newer}  # a run made before the fields and the renames
    assert cfg.identity() == old_config
    assert run_id(cfg, 0, "test") != run_id(cfg.replace(precision="bf16"), 0, "test")
    run = Run(tmp_path / "old")
    run.start({"config": old_config, "seed": 0, "profile": "test"})
    run.start({"config": cfg.to_dict(), "seed": 0, "profile": "test"})  # the same run: no error
    with pytest.raises(UserError, match="holds a different run"):
        run.start({"config": cfg.replace(precision="bf16").to_dict(), "seed": 0, "profile": "test"})


def test_the_commit_a_record_names_is_the_code_that_ran(tmp_path, monkeypatch):
    """``git_commit``: HEAD of the checkout the code runs from, ``-dirty`` when a tracked file
    outside ``results/`` differs from it (a record of edited code never claims a clean commit)."""
    import subprocess

    from bench.runs import runstore

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "results").mkdir()
    for name in ("code.py", "results/record.jsonl"):
        (tmp_path / name).write_text("1\n")
    git("add", "-A")
    git("commit", "-qm", "first")
    head = git("rev-parse", "HEAD")
    monkeypatch.setattr(runstore, "PROJECT_ROOT", tmp_path)

    def commit_now() -> str:
        runstore.git_commit.cache_clear()
        return runstore.git_commit()

    try:
        assert commit_now() == head
        (tmp_path / "results" / "record.jsonl").write_text("2\n")  # records are not code
        (tmp_path / "untracked.py").write_text("x\n")
        assert commit_now() == head
        (tmp_path / "code.py").write_text("2\n")
        assert commit_now() == f"{head}-dirty"
        elsewhere = tmp_path.parent / f"{tmp_path.name}-not-a-checkout"
        elsewhere.mkdir()
        monkeypatch.setattr(runstore, "PROJECT_ROOT", elsewhere)
        assert commit_now() == "unknown"
    finally:
        runstore.git_commit.cache_clear()
