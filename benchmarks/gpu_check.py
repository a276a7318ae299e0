"""``make gpu-check``: what only a CUDA device can show, in one run of a few minutes.

``python -m benchmarks.gpu_check [--device cuda] [--out runs/gpu_check.json]`` writes one
strict-JSON record per check and exits 1 if any failed. Sections (``--only`` picks some):

- ``numerics``: every public loss and metric (``benchmarks/_gpu_cases.py``) on the device,
  in float32 and with half-precision inputs under bf16/fp16 autocast, against the CPU in
  float64 on the same (rounded) inputs; values and, for losses, the first input's gradient,
  within ``TOLERANCES[mode]``;
- ``train``: a few epochs of the tiny shipped recipes with AMP (in-batch, MoCo queue, dense,
  DenseCL queue; synthetic images), each run killed with SIGKILL after its second epoch's
  steps and before that epoch's checkpoint, then resumed: its checkpoint (weights,
  optimizer, scaler, RNG, queues) and step log must equal an uninterrupted run's bit for
  bit. Runs use ``torch.use_deterministic_algorithms`` (cuBLAS and cuDNN pick
  run-to-run reproducible kernels), as a user who needs identical resumes must;
- ``ddp``: two NCCL processes (gloo on the CPU) under ``torchrun``, global-batch losses
  and their gradients against one process on the concatenated batch, and with two GPUs
  ``train`` under ``torchrun`` against one process (``DDP_TRAIN_RUNS``: BatchNorm-free,
  SyncBatchNorm, a queue with MoCo's shuffling BN); skipped, with the reason, where the
  processes cannot share the device (NCCL refuses two ranks on one GPU);
- ``bench``: the GPU rows of ``make bench`` (``benchmarks/bench_gpu.py``), checked against
  the paper's one-liner.

Without CUDA and without ``--device`` it says so and exits 0. ``--device cpu`` runs the same
checks on the CPU (bf16 autocast only; DDP with gloo), which is how
``tests/test_gpu_check.py`` tests this file; ``--plant NAME`` perturbs check NAME's device
result, to show that a failure is caught and named.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

# cuBLAS reads this when it starts: reproducible matmuls for the deterministic runs
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("numerics", "train", "ddp", "bench")

#: (rtol, atol) per mode: float32 is float32 rounding of a float64-exact computation;
#: under autocast the inputs are rounded to the half type first (and so is the reference's)
#: and what is left is the library's own half-precision steps (e.g. a normalisation)
#: (the half-precision gradient itself is rounded: 2^-9 relative for bf16, 2^-11 for fp16)
TOLERANCES = {"float32": (1e-4, 1e-5), "bf16_autocast": (1.5e-2, 1.5e-2),
              "fp16_autocast": (5e-3, 5e-3)}
HALF = {"bf16_autocast": torch.bfloat16, "fp16_autocast": torch.float16}
#: share of the float64 reference's location pairs the device must find
#: (an argmax over half-precision similarities flips near-ties; a random pairing agrees on
#: about one location in H W = 16)
PAIR_AGREEMENT = {"float32": 1.0, "bf16_autocast": 0.85, "fp16_autocast": 0.95}

Record = dict[str, Any]


class Checker:
    """Runs checks, records each outcome, and perturbs the planted one."""

    def __init__(self, device: torch.device, plant: str | None = None,
                 match: list[str] | None = None) -> None:
        self.device, self.plant, self.match = device, plant, match
        self.records: list[Record] = []

    def planted(self, name: str) -> bool:
        return self.plant == name

    def run(self, name: str, fn: Callable[[], Record | None]) -> None:
        """Record ``fn()``'s details as a pass, its AssertionError or exception as a fail,
        and a ``Skip`` as a skip; not run unless its name is one of ``match`` or begins
        with one and a dot."""
        if self.match and not any(name == m or name.startswith(m + ".") for m in self.match):
            return
        start = time.perf_counter()
        try:
            record = {"name": name, "status": "pass", **(fn() or {})}
        except Skip as skip:
            record = {"name": name, "status": "skip", "reason": str(skip)}
        except Mismatch as err:
            record = {"name": name, "status": "fail", "error": f"Mismatch: {err}",
                      **err.details}
        except Exception as err:  # noqa: BLE001 (any error is this check's failure)
            record = {"name": name, "status": "fail", "error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc(limit=-4)}
        record["seconds"] = round(time.perf_counter() - start, 3)
        print(f"{record['status']:4}  {name}  "
              + (record.get("error") or record.get("reason") or ""), flush=True)
        self.records.append(record)


class Skip(Exception):
    """A check that cannot run here, with the reason."""


class Mismatch(AssertionError):
    """Device results off their references; ``details`` holds both, for the report."""

    def __init__(self, message: str, details: Record) -> None:
        super().__init__(message)
        self.details = details


def _strict(value: Any) -> Any:
    """``value`` with each NaN or infinity as its name: the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _close(got: float | None, want: float | None, rtol: float, atol: float) -> bool:
    if got is None or want is None:
        return got is want
    return math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


# ---------------------------------------------------------------------------- numerics


def _modes(device: torch.device) -> list[str]:
    # CPU autocast is bf16 in the training engine (amp=fp16 needs CUDA)
    return list(TOLERANCES) if device.type == "cuda" else ["float32", "bf16_autocast"]


def _call(case, device: torch.device, inputs: tuple[torch.Tensor, ...], mode: str):
    """The case on ``device`` in ``mode``: its numbers and the first input's gradient."""
    from benchmarks._gpu_cases import loss_of, numbers

    dtype = HALF.get(mode, torch.float32)
    leaves = [t.to(device=device, dtype=dtype).requires_grad_(case.grad) for t in inputs]
    with torch.autocast(device.type, dtype=HALF.get(mode, torch.bfloat16),
                        enabled=mode in HALF):
        out = case.fn(device, *leaves)
        grad = None
        if case.grad:
            loss_of(out).backward()
            grad = cast(torch.Tensor, leaves[0].grad).double().cpu()
    return numbers(out), grad


def _numeric_check(checker: Checker, case, mode: str) -> Record:
    from benchmarks._gpu_cases import loss_of, numbers

    rtol, atol = TOLERANCES[mode]
    inputs = case.inputs()
    if mode in HALF:  # the reference sees the same rounded inputs
        inputs = tuple(t.to(HALF[mode]).double() for t in inputs)
    ref_leaves = [t.clone().requires_grad_(case.grad) for t in inputs]
    ref_out = case.fn(torch.device("cpu"), *ref_leaves)
    ref = numbers(ref_out)
    ref_grad = None
    if case.grad:
        loss_of(ref_out).backward()
        ref_grad = ref_leaves[0].grad
    got, grad = _call(case, checker.device, inputs, mode)
    if checker.planted(f"numerics.{case.name}.{mode}"):
        got = {k: set(sorted(v)[: len(v) // 2]) if isinstance(v, set)
               else None if v is None else v * 1.1 + 0.1 for k, v in got.items()}
    record: Record = {"rtol": rtol, "atol": atol}
    bad = []
    for key, want in ref.items():
        have = got[key]
        if isinstance(want, set):
            agree = len(have & want) / max(len(want | have), 1)
            record[key] = {"reference": len(want), "device": len(have), "agreement": agree}
            if agree < PAIR_AGREEMENT[mode]:
                bad.append(f"{key}: {agree:.3f} of the pairs agree")
            continue
        record[key] = {"reference": want, "device": have}
        if not _close(have, want, rtol, atol):
            bad.append(f"{key}: {have!r} vs float64 {want!r}")
    if ref_grad is not None and grad is not None:
        scale = float(ref_grad.abs().max())
        diff = float((grad - ref_grad).abs().max()) if torch.isfinite(grad).all() else math.inf
        record["grad_max_abs_diff"], record["grad_max_abs"] = diff, scale
        if not diff <= atol + rtol * scale:
            bad.append(f"gradient: max |diff| {diff:.3g} for max |grad| {scale:.3g}")
    if bad:
        raise Mismatch("; ".join(bad), record)
    return record


def _subset_check(checker: Checker) -> Record:
    """Sampled ``Uniformity`` with pruning: the draw is the device generator's, so compare
    ``compute`` with float64 on the subset it kept."""
    from alignuniform import metrics

    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(8)).to(checker.device)
    metric = metrics.Uniformity(max_rows=32)
    for chunk in x.split(40):
        metric.update(chunk)
    value, subset = float(metric.compute()), metric.subset().double().cpu()
    want = cast(float, metrics.uniformity(subset, normalize=False))
    if checker.planted("numerics.Uniformity.subset"):
        value += 1.0
    assert subset.shape[0] == 32, f"kept {subset.shape[0]} rows, not max_rows=32"
    assert _close(value, want, *TOLERANCES["float32"]), f"{value} vs float64 {want}"
    return {"device": value, "reference": want}


def check_numerics(checker: Checker) -> None:
    from benchmarks._gpu_cases import CASES, uncovered

    for case in CASES:
        for mode in _modes(checker.device):
            checker.run(f"numerics.{case.name}.{mode}",
                        functools.partial(_numeric_check, checker, case, mode))
    checker.run("numerics.Uniformity.subset", lambda: _subset_check(checker))
    missing = uncovered()

    def coverage() -> Record:
        if missing:
            raise Skip(f"no case yet for {', '.join(missing)} (add one to _gpu_cases.py)")
        return {}

    checker.run("numerics.coverage", coverage)


# ---------------------------------------------------------------------------- training

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
    """Reproducible kernels while inside; yields the warnings of ops that have none."""
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            messages: list[str] = []
            yield messages
        messages.extend(sorted({str(w.message).splitlines()[0] for w in caught
                                if "deterministic" in str(w.message)}))
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


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


def _train_worker(config_path: str, out: str, kill_after: int | None) -> None:
    from alignuniform.train import load_config, train

    with _deterministic():
        train(load_config(config_path), out, monitor=_monitor(kill_after), progress=False)


def _child(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """Where two checkpoints differ, bit for bit."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                yield f"{path}{key} (only in one)"
            else:
                yield from _differences(a[key], b[key], f"{path}{key}.")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            yield from _differences(u, v, f"{path}{i}.")
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
    differ = list(_differences(final, expected))
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


def _ddp_worker(out: str, device_type: str) -> None:
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
    if proc.returncode and "Duplicate GPU" in proc.stderr:
        raise Skip("NCCL refuses two ranks on one GPU (ncclInvalidUsage: Duplicate GPU "
                   f"detected); {torch.cuda.device_count()} GPU(s) here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    if checker.planted("ddp.losses"):
        results["uniform_loss"]["loss"] += 1.0
    bad = [name for name, r in results.items()
           if not (_close(r["loss"], r["reference"], 1e-5, 1e-6)
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
    proc = _torchrun(["-m", "alignuniform", "train", "--config", str(folder / "config.yaml"),
                      "--out", str(folder / "ddp"), "--no-progress"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = config if not config.model.sync_bn else dataclasses.replace(
        config, model=dataclasses.replace(config.model, sync_bn=False))
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


# ---------------------------------------------------------------------------- bench


def _bench_check(checker: Checker) -> Record:
    from benchmarks import bench_gpu

    on_cuda = checker.device.type == "cuda"
    rows = bench_gpu.rows(checker.device, "full" if on_cuda else "small")
    if checker.planted("bench.gpu_rows"):
        rows[0]["value_rel_diff"] = 1.0
    first = rows[0]
    assert first["value_rel_diff"] < 1e-4 and first["grad_max_rel_diff"] < 1e-3, (
        f"uniform_loss differs from the paper's one-liner: {first}")
    slow = [r["what"] for r in rows
            if not all(v > 0 and math.isfinite(v) for k, v in r.items() if k.endswith("_s")
                       or k == "seconds")]
    assert not slow, f"times that are not positive and finite: {slow}"
    if on_cuda:
        assert all(r.get("peak_mib", 0) is not None for r in rows), "peak memory missing"
        # the claim of the blocked kernel: no N x N matrix, in either pass
        assert first["peak_mib_ours"] < first["peak_mib_paper"] / 4, (
            f"uniform_loss peak {first['peak_mib_ours']} MiB vs the one-liner's "
            f"{first['peak_mib_paper']}")
    return {"rows": rows}


def check_bench(checker: Checker) -> None:
    checker.run("bench.gpu_rows", lambda: _bench_check(checker))


# ---------------------------------------------------------------------------- main

CHECKS = {"numerics": check_numerics, "train": check_train, "ddp": check_ddp,
          "bench": check_bench}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", help="cuda (the default when CUDA is here), cuda:N or cpu")
    parser.add_argument("--out", default="runs/gpu_check.json", help="the JSON report")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections")
    parser.add_argument("--match", nargs="+", metavar="TEXT",
                        help="run only the checks named so, or whose name begins with one "
                        "and a dot (numerics.uniform_loss: all its modes)")
    parser.add_argument("--plant", metavar="NAME",
                        help="perturb check NAME's device result (a failure must be named)")
    # the child processes of the train and ddp checks
    parser.add_argument("--train-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-worker", nargs=2, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.train_worker:
        config_path, out, kill_after = args.train_worker
        _train_worker(config_path, out, int(kill_after))
        return 0
    if args.ddp_worker:
        _ddp_worker(*args.ddp_worker)
        return 0
    if args.device is None and not torch.cuda.is_available():
        print("CUDA is not available here (torch.cuda.is_available() is False): nothing to "
              "check; pass --device cpu to run the checks on the CPU")
        return 0
    device = torch.device(args.device or "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {device}: CUDA is not available here", file=sys.stderr)
        return 2
    checker = Checker(device, args.plant, args.match)
    start = time.perf_counter()
    for section in args.only or SECTIONS:
        CHECKS[section](checker)
    if args.plant and all(r["name"] != args.plant for r in checker.records):
        print(f"--plant {args.plant}: no check of that name ran", file=sys.stderr)
        return 2
    failed = [r["name"] for r in checker.records if r["status"] == "fail"]
    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "ok": not failed,
        "failed": failed,
        "skipped": [r["name"] for r in checker.records if r["status"] == "skip"],
        "wall_s": round(time.perf_counter() - start, 1),
        "checks": checker.records,
    }
    from alignuniform.io import write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, _strict(report))
    print(f"{len(checker.records)} checks, {len(failed)} failed: wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
