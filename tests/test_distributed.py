"""Tests for alignuniform.distributed and DDP training.

One ``torchrun`` launch of 2 gloo processes on CPU runs this file as its worker script
(``python -m torch.distributed.run ... tests/test_distributed.py --worker OUT CONFIG``):
each rank checks loss and gradients of a global-batch loss against a single process on the
concatenated batch, then trains through the ``alignuniform train`` CLI; the test compares
the trained weights with a single-process run. The same for MoCo's queue (``queue`` section):
one step's loss and gradients, and after 6 steps the weights, the key encoder and the queue.
The model is BatchNorm-free (small_cnn with ``batch_norm: false``): BatchNorm statistics of a
half batch differ from the full batch's, and PyTorch's SyncBatchNorm (the fix) runs on GPUs
only. Without the keys gathered in sample order the queue check fails (the rows of each
enqueued batch would come rank by rank).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn

import alignuniform as au
from alignuniform import distributed
from alignuniform.checkpoint import load_checkpoint
from alignuniform.losses import LossCombination

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
N_PER_RANK, D_IN, D_OUT = 6, 5, 4


WEIGHTS = {"w_contrastive": 1.0, "tau": 0.5, "w_align": 1.0, "w_uniform": 1.0, "w_nt_xent": 0.5}


def _problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor, LossCombination]:
    """A linear encoder, two views of the global batch, and a loss using every term."""
    torch.manual_seed(0)
    model = nn.Linear(D_IN, D_OUT)
    v1 = torch.randn(WORLD * N_PER_RANK, D_IN)
    v2 = v1 + 0.3 * torch.randn_like(v1)
    return model, v1, v2, LossCombination(**WEIGHTS)


def _functions(x: torch.Tensor, y: torch.Tensor, gather: bool) -> torch.Tensor:
    """The public loss functions, each gathering itself when ``gather``."""
    return (
        au.uniform_loss(x, 1.5, gather_distributed=gather)
        + au.contrastive_loss(x, y, 0.4, gather_distributed=gather)
        + au.nt_xent_loss(x, y, 0.3, gather_distributed=gather)
    )


def _functions_loss(net: nn.Module, v1, v2, gather: bool) -> torch.Tensor:
    z = F.normalize(net(torch.cat([v1, v2])), dim=1)
    return _functions(*z.chunk(2), gather)


def _loss(net: nn.Module, v1, v2, crit, gather) -> torch.Tensor:
    z = F.normalize(net(torch.cat([v1, v2])), dim=1)
    x, y = z.chunk(2)
    return crit(gather(x), gather(y))["loss"]


def _queue_problem():
    """A linear query encoder, its key encoder, a queue, and a loss using every queue term."""
    from alignuniform.train import MomentumQueue, QueueLoss

    model, v1, v2, _ = _problem()
    mq = MomentumQueue(model, size=4 * WORLD * N_PER_RANK, dim=D_OUT, momentum=0.9, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # the key encoder lags the query encoder
    crit = QueueLoss(w_contrastive=1.0, tau=0.5, w_align=3.0, w_uniform=1.0, t=3.0)
    return model, mq, v1, v2, crit


def _queue_loss(net, mq, v1, v2, crit) -> torch.Tensor:
    from alignuniform.train.queue import gather_in_sample_order

    q = F.normalize(net(v1), dim=1)
    with torch.no_grad():
        k = F.normalize(mq.key_encoder(v2), dim=1)
    return crit(gather_in_sample_order(q), gather_in_sample_order(k), mq.queue)["loss"]


def _naive_gather(x: torch.Tensor) -> torch.Tensor:
    """The common peer-library bug: other ranks' rows come in without gradient."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def _worker(out: str, config: str) -> None:
    """What each torchrun rank does (see the module docstring)."""
    from alignuniform.cli import main

    ctx = distributed.init_from_env("cpu")
    try:
        model, v1, v2, crit = _problem()
        net = nn.parallel.DistributedDataParallel(model)
        rows = slice(ctx.rank * N_PER_RANK, (ctx.rank + 1) * N_PER_RANK)
        results = {"ranks": (distributed.get_rank(), distributed.get_world_size())}
        for name, gather in (("ours", distributed.all_gather), ("naive", _naive_gather)):
            net.zero_grad()
            loss = _loss(net, v1[rows], v2[rows], crit, gather)
            loss.backward()
            results[name] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        # the user-facing API: no gather in the loop, gather_distributed=True in the losses
        api = LossCombination(**WEIGHTS, gather_distributed=True)
        for name, loss_fn in (
            ("api", lambda: _loss(net, v1[rows], v2[rows], api, lambda t: t)),
            ("functions", lambda: _functions_loss(net, v1[rows], v2[rows], True)),
        ):
            net.zero_grad()
            loss = loss_fn()
            loss.backward()
            results[name] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        # the queue: rank r holds samples r, r + WORLD, ... (DistributedSampler's deal)
        model, mq, v1, v2, crit = _queue_problem()
        net = nn.parallel.DistributedDataParallel(model)
        mine = slice(ctx.rank, None, WORLD)
        loss = _queue_loss(net, mq, v1[mine], v2[mine], crit)
        loss.backward()
        results["queue"] = (loss.detach(), [p.grad.clone() for p in model.parameters()])
        torch.save(results, f"{out}/grads.{ctx.rank}")
        # the process group stays up: train() uses it rather than creating its own
        for name, extra in (("ddp", []), ("ddp_queue", QUEUE_OVERRIDES)):
            code = main(["train", "--config", config, "--out", f"{out}/{name}", "--no-progress",
                         *extra])
            if code:
                raise SystemExit(code)
    finally:
        distributed.cleanup()


def _tiny_config(tmp_path: Path) -> Path:
    config = {
        "data": {"name": "synthetic", "recipe": "identity", "batch_size": 16, "num_workers": 0,
                 "kwargs": {"n": 48}},
        "model": {"name": "small_cnn", "feat_dim": 8,
                  "kwargs": {"width": 4, "hidden_dim": 16, "batch_norm": False}},
        "loss": {"w_contrastive": 1.0, "tau": 0.5, "w_align": 1.0, "w_uniform": 1.0},
        "optim": {"lr": 0.5, "milestones": [1]},
        "epochs": 2,
        "device": "cpu",
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# 2 global batches of 16: the queue wraps; shuffle_bn runs its gather/permute/un-permute
# path (the model has no BatchNorm, so it must change nothing)
QUEUE_OVERRIDES = ["queue.size=32", "queue.momentum=0.9", "queue.shuffle_bn=true",
                   "loss.w_align=3", "loss.t=3"]


def test_helpers_without_a_process_group():
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert distributed.is_main_process() and not distributed.is_distributed()
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.all_gather(x) is x
    distributed.barrier()  # a no-op
    # gather_distributed=True outside a process group is the local loss
    y = torch.randn(3, 2)
    assert _functions(x, y, True).item() == _functions(x, y, False).item()
    crit = LossCombination(**WEIGHTS, gather_distributed=True)
    assert crit(x, y)["loss"].item() == LossCombination(**WEIGHTS)(x, y)["loss"].item()
    assert "gathered over processes" in repr(crit)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_the_concatenated_batch(tmp_path):
    from alignuniform.train import load_config, train
    from tests.helpers import free_port  # here: this file also runs as a bare worker script

    config = _tiny_config(tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           "--master_port", str(free_port()), __file__, "--worker", str(tmp_path), str(config)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # 1) loss and gradients of one step, on every rank
    model, v1, v2, crit = _problem()
    loss = _loss(model, v1, v2, crit, lambda t: t)
    loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    functions_loss = _functions_loss(model, v1, v2, False)
    functions_loss.backward()
    functions_grads = [p.grad.clone() for p in model.parameters()]
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"grads.{rank}", weights_only=True)
        assert got["ranks"] == (rank, WORLD)
        ours_loss, ours_grads = got["ours"]
        torch.testing.assert_close(ours_loss, loss.detach(), atol=1e-5, rtol=0)
        for g, e in zip(ours_grads, expected, strict=True):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
        # LossCombination(gather_distributed=True) and the functions' own flag
        for name, want_loss, want_grads in (
            ("api", loss, expected), ("functions", functions_loss, functions_grads)
        ):
            got_loss, got_grads = got[name]
            torch.testing.assert_close(got_loss, want_loss.detach(), atol=1e-5, rtol=0)
            for g, e in zip(got_grads, want_grads, strict=True):
                torch.testing.assert_close(g, e, atol=1e-5, rtol=0, msg=name)
        # the check can fail: a gather without the backward all-reduce gets gradients wrong
        naive_loss, naive_grads = got["naive"]
        torch.testing.assert_close(naive_loss, loss.detach(), atol=1e-5, rtol=0)
        assert (naive_grads[0] - expected[0]).abs().max() > 1e-3

    # 2) parameters after 6 SGD steps (2 epochs x 3 global batches of 16)
    train(load_config(config), tmp_path / "single", progress=False)
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    single = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    assert ddp["step"] == single["step"] == 6
    initial = _initial_head(config)
    assert (single["model"]["head.weight"] - initial).abs().max() > 1e-2  # training moved it
    for name, value in single["model"].items():
        torch.testing.assert_close(ddp["model"][name], value, atol=1e-5, rtol=1e-4, msg=name)
    # only rank 0 logs: one line per global step
    assert len((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()) == 6

    # 3) the queue: one step's loss and gradients, then weights, key encoder and queue
    model, mq, v1, v2, crit = _queue_problem()
    loss = _queue_loss(model, mq, v1, v2, crit)
    loss.backward()
    expected = [p.grad for p in model.parameters()]
    for rank in range(WORLD):
        got_loss, got_grads = torch.load(tmp_path / f"grads.{rank}", weights_only=True)["queue"]
        torch.testing.assert_close(got_loss, loss.detach(), atol=1e-5, rtol=0)
        for g, e in zip(got_grads, expected, strict=True):
            torch.testing.assert_close(g, e, atol=1e-5, rtol=0)
    train(load_config(config, QUEUE_OVERRIDES), tmp_path / "single_queue", progress=False)
    ddp = load_checkpoint(tmp_path / "ddp_queue" / "checkpoint.pt")
    single = load_checkpoint(tmp_path / "single_queue" / "checkpoint.pt")
    assert ddp["step"] == single["step"] == 6 and int(single["momentum_queue"]["ptr"]) == 0
    for part in ("model", "momentum_queue"):
        for name, value in single[part].items():
            torch.testing.assert_close(ddp[part][name], value, atol=1e-5, rtol=1e-4,
                                       msg=f"{part}: {name}")
    # every slot of the queue was written by training (none of the random initial keys left)
    initial = F.normalize(torch.randn(32, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    trained = single["momentum_queue"]["queue"]
    assert trained.shape == (32, 8) and (trained - initial).norm(dim=1).min() > 1e-3
    ddp_log, single_log = (_lines(tmp_path / r / "log.jsonl") for r in ("ddp_queue",
                                                                         "single_queue"))
    for a, b in zip(ddp_log, single_log, strict=True):
        assert a.keys() == b.keys() == {"step", "epoch", "lr", "loss", "contrastive", "align",
                                        "uniform"}
        assert abs(a["loss"] - b["loss"]) < 1e-5


def _lines(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def _initial_head(config: Path) -> torch.Tensor:
    from alignuniform.models import build_model
    from alignuniform.train import load_config

    cfg = load_config(config)
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model.name, feat_dim=cfg.model.feat_dim,
                       **cfg.model.kwargs).head.weight.detach()


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(sys.argv[2], sys.argv[3])
