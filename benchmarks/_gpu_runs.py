"""The training checks of ``benchmarks.gpu_check``: kill -9 and exact resume, and DDP.

Each ``train`` check runs a tiny shipped recipe three times: uninterrupted, killed (in a
child process, by a monitor that sends it SIGKILL after epoch ``KILL_AFTER_EPOCH``'s steps
and before that epoch's checkpoint), and resumed; the DDP checks launch two ranks with
``torch.distributed.run`` and compare them with one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import torch

from benchmarks._gpu_checker import ROOT, Checker, Record, Skip, close

TINY = ["data.name=synthetic", "data.root=null", "data.subset=null", "data.kwargs={n: 48}",
        "data.batch_size=16", "data.num_workers=0", "model.feat_dim=8",
        "model.kwargs.width=4", "model.kwargs.hidden_dim=16", "epochs=3",
        "optim.milestones=[2]", "seed=0"]
DENSE = ["model.kwargs.dense_dim=8"]
#: check name -> (shipped recipe, overrides, AMP on CUDA); bf16 on the CPU
TRAIN_RUNS = {
    "train.in_batch": ("cifar10_cpu_align_uniform", ["loss.w_contrastive=1", "loss.tau=0.2"],
                       "fp16"),
    "train.queue": ("cifar10_cpu_align_uniform_queue", ["queue.size=32"], "bf16"),
    "train.dense_in_batch": ("cifar10_cpu_dense", DENSE, "bf16"),
    "train.dense_queue": ("cifar10_cpu_densecl_queue", [*DENSE, "queue.size=32"], "fp16"),
}
KILL_AFTER_EPOCH = 2


@contextlib.contextmanager
def _deterministic() -> Iterator[list[str]]:
    """Reproducible float32 kernels while inside; yields the warnings of ops that have no
    deterministic kernel. TF32 is off too: the DDP checks compare a half batch's sums with
    the whole batch's, which TF32's 10-bit products would round apart."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark,
              cudnn.allow_tf32, matmul.allow_tf32)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.benchmark = cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            messages: list[str] = []
            yield messages
        messages.extend(sorted({str(w.message).splitlines()[0] for w in caught
                                if "deterministic" in str(w.message)}))
    finally:
        torch.use_deterministic_algorithms(before[0])
        cudnn.benchmark, cudnn.allow_tf32, matmul.allow_tf32 = before[1:]


def _config(name: str, device: torch.device):
    from alignuniform.train import load_config

    recipe, overrides, amp = TRAIN_RUNS[name]
    amp = amp if device.type == "cuda" else "bf16"
    return load_config(recipe, [*TINY, *overrides, f"device={device}", f"amp={amp}"])


def _monitor(kill_after: int | None) -> Callable[[Any, int], dict]:
    """A monitor that adds nothing, or kills this process with SIGKILL at ``kill_after``:
    the epoch's steps are logged and its checkpoint is not yet written."""
    def monitor(model: Any, epoch: int) -> dict:
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return {}
    return monitor


def train_worker(config_path: str, out: str, kill_after: int | None) -> None:
    """``train`` (one rank of it under torchrun) as the checks run it, killed with SIGKILL
    after epoch ``kill_after`` if that is not None."""
    from alignuniform.train import load_config, train

    with _deterministic():
        train(load_config(config_path), out, monitor=_monitor(kill_after), progress=False)


def _child(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Where two checkpoints differ, bit for bit."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield f"{path}{key} (only in one)"
            else:
                yield from differences(a[key], b[key], f"{path}{key}.")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            yield from differences(u, v, f"{path}{i}.")
    elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype or not torch.equal(a, b):
            yield path.rstrip(".")
    elif a != b:
        yield path.rstrip(".")


def _train_check(checker: Checker, name: str, work: Path) -> Record:
    from alignuniform.checkpoint import load_checkpoint
    from alignuniform.train import save_config, train

    config = _config(name, checker.device)
    folder = work / name
    folder.mkdir(parents=True)
    save_config(config, folder / "config.yaml")
    run = folder / "killed"
    with _deterministic() as nondeterministic:
        reference = train(config, folder / "reference", monitor=_monitor(None), progress=False)
        proc = _child(["--train-worker", str(folder / "config.yaml"), str(run),
                       str(KILL_AFTER_EPOCH)])
        assert proc.returncode == -signal.SIGKILL, (
            f"the run to kill exited {proc.returncode}: {proc.stderr[-1500:]}")
        killed_at = load_checkpoint(run / "checkpoint.pt")
        logged = (run / "log.jsonl").read_text().splitlines()
        assert killed_at["epoch"] == KILL_AFTER_EPOCH - 1 and len(logged) > killed_at["step"], (
            f"killed at epoch {killed_at['epoch']} step {killed_at['step']} with "
            f"{len(logged)} steps logged: not after the checkpoint")
        train(config, run, resume=True, monitor=_monitor(None), progress=False)
    final, expected = (load_checkpoint(p / "checkpoint.pt") for p in (run, reference))
    if checker.planted(name):
        final["model"] = {k: v + 1 for k, v in final["model"].items()}
    differ = list(differences(final, expected))
    assert not differ, (f"resumed run differs from the uninterrupted one in {differ[:8]}; "
                        f"ops without a deterministic kernel: {nondeterministic}")
    log_ref = (reference / "log.jsonl").read_text()
    assert (run / "log.jsonl").read_text() == log_ref, "the step logs differ"
    return {"amp": config.amp, "steps": int(final["step"]),
            "killed_after_step": int(killed_at["step"]), "logged_when_killed": len(logged),
            "final_loss": json.loads(log_ref.splitlines()[-1])["loss"],
            "nondeterministic_ops": nondeterministic}


def check_train(checker: Checker) -> None:
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name in TRAIN_RUNS:
            checker.run(name, functools.partial(_train_check, checker, name, Path(tmp)))


# ---------------------------------------------------------------------------- DDP

WORLD = 2


def ddp_worker(out: str, device_type: str) -> None:
    """One rank (NCCL on CUDA, gloo on the CPU): global-batch losses of its half against
    the whole batch in this process."""
    import torch.distributed as dist
    import torch.nn.functional as F

    import alignuniform as au

    rank = int(os.environ["RANK"])
    if device_type == "cuda":
        device = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    try:
        gen = torch.Generator().manual_seed(0)
        x = F.normalize(torch.randn(WORLD * 32, 16, generator=gen), dim=1).to(device)
        y = F.normalize(x + 0.3 * torch.randn(x.shape, generator=gen).to(device), dim=1)
        mine = slice(rank * 32, (rank + 1) * 32)
        results = {}
        losses: dict[str, Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]] = {
            "uniform_loss": lambda a, b, g: au.uniform_loss(a, gather_distributed=g),
            "contrastive_loss": lambda a, b, g: au.contrastive_loss(a, b, 0.2,
                                                                    gather_distributed=g),
            "nt_xent_loss": lambda a, b, g: au.nt_xent_loss(a, b, gather_distributed=g),
        }
        for name, fn in losses.items():
            whole = x.clone().requires_grad_()
            want = fn(whole, y, False)
            want.backward()
            part = x[mine].clone().requires_grad_()
            got = fn(part, y[mine], True)
            got.backward()
            # the gather's backward sums over ranks: WORLD times this rank's rows' gradient
            grads = cast(torch.Tensor, part.grad), cast(torch.Tensor, whole.grad)
            grad_diff = (grads[0] - WORLD * grads[1][mine]).abs().max().item()
            results[name] = {"loss": got.item(), "reference": want.item(),
                             "grad_max_abs_diff": grad_diff}
        if rank == 0:
            Path(out).write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           "--master_port", str(_free_port()), *args]
    # a hung collective must not eat the device time: every run here takes seconds
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def _ddp_losses(checker: Checker, work: Path) -> Record:
    out = work / "ddp_losses.json"
    proc = _torchrun(["-m", "benchmarks.gpu_check", "--ddp-worker", str(out),
                      checker.device.type])
    if proc.returncode and "Duplicate GPU" in proc.stdout + proc.stderr:
        raise Skip("NCCL refuses two ranks on one GPU (ncclInvalidUsage: Duplicate GPU "
                   f"detected); {torch.cuda.device_count()} GPU(s) here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    if checker.planted("ddp.losses"):
        results["uniform_loss"]["loss"] += 1.0
    bad = [name for name, r in results.items()
           if not (close(r["loss"], r["reference"], 1e-5, 1e-6)
                   and r["grad_max_abs_diff"] <= 1e-5)]
    assert not bad, f"gathered losses differ from one process's: {bad} {results}"
    return results


#: ``train`` under torchrun against one process: name -> (recipe, overrides). BatchNorm-free,
#: as a half batch's statistics differ from the whole batch's, except with SyncBatchNorm;
#: unaugmented (``DDP_DATA``), as each rank draws its own augmentations
DDP_DATA = ["data.recipe=identity", "data.batched_augment=false"]
DDP_TRAIN_RUNS = {
    "ddp.train": ("cifar10_cpu_align_uniform", ["model.kwargs.batch_norm=false"]),
    "ddp.train_sync_bn": ("cifar10_cpu_align_uniform", ["model.sync_bn=true"]),
    # the gather, permute and put-back path of MoCo's shuffling BN (a no-op without BN)
    "ddp.train_queue_shuffle_bn": ("cifar10_cpu_align_uniform_queue",
                                   ["model.kwargs.batch_norm=false", "queue.size=32",
                                    "queue.shuffle_bn=true"]),
}


def _ddp_train(checker: Checker, name: str, work: Path) -> Record:
    recipe, overrides = DDP_TRAIN_RUNS[name]
    on_cuda = checker.device.type == "cuda"
    if not on_cuda and "model.sync_bn=true" in overrides:
        raise Skip("SyncBatchNorm needs CUDA")
    if on_cuda and torch.cuda.device_count() < WORLD:
        raise Skip(f"train under torchrun needs {WORLD} GPUs (one rank each), "
                   f"{torch.cuda.device_count()} here")
    from alignuniform.checkpoint import load_checkpoint
    from alignuniform.train import load_config, save_config, train

    config = load_config(recipe, [*TINY, *DDP_DATA, *overrides, f"device={checker.device.type}",
                                  "amp=none"])
    folder = work / name
    folder.mkdir()
    save_config(config, folder / "config.yaml")
    proc = _torchrun(["-m", "benchmarks.gpu_check", "--train-worker",
                      str(folder / "config.yaml"), str(folder / "ddp"), "none"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = config if not config.model.sync_bn else dataclasses.replace(
        config, model=dataclasses.replace(config.model, sync_bn=False))
    with _deterministic():
        train(single, folder / "single", progress=False)
    ddp, one = (load_checkpoint(folder / p / "checkpoint.pt") for p in ("ddp", "single"))
    if checker.planted(name):
        ddp["model"] = {k: v + 1 for k, v in ddp["model"].items()}
    tensors = {f"model.{k}": (ddp["model"][k], v) for k, v in one["model"].items()}
    tensors.update({f"momentum_queue.{k}": (ddp["momentum_queue"][k], v)
                    for k, v in one.get("momentum_queue", {}).items()})
    diffs = {k: (a.double() - b.double()).abs().max().item() for k, (a, b) in tensors.items()
             if a.is_floating_point()}
    worst = max(diffs, key=diffs.__getitem__)
    assert diffs[worst] <= 1e-4, f"DDP differs from one process by {diffs[worst]} in {worst}"
    assert ddp["step"] == one["step"], f"steps {ddp['step']} vs {one['step']}"
    return {"max_abs_diff": diffs[worst], "worst": worst, "steps": int(ddp["step"])}


def check_ddp(checker: Checker) -> None:
    with tempfile.TemporaryDirectory(prefix="gpu_check_ddp_") as tmp:
        checker.run("ddp.losses", lambda: _ddp_losses(checker, Path(tmp)))
        for name in DDP_TRAIN_RUNS:
            checker.run(name, functools.partial(_ddp_train, checker, name, Path(tmp)))
