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
  ``train`` under ``torchrun`` against one process (``_gpu_runs.DDP_TRAIN_RUNS``: BatchNorm-free,
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
import functools
import math
import os
import sys
import time
from pathlib import Path
from typing import cast

# cuBLAS reads this when it starts: reproducible matmuls for the deterministic runs
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from benchmarks._gpu_checker import Checker, Mismatch, Record, Skip, close, strict_json  # noqa: E402
from benchmarks._gpu_runs import (  # noqa: E402
    check_ddp,
    check_train,
    ddp_worker,
    train_worker,
)

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
        if not close(have, want, rtol, atol):
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
    assert close(value, want, *TOLERANCES["float32"]), f"{value} vs float64 {want}"
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
        train_worker(config_path, out, None if kill_after == "none" else int(kill_after))
        return 0
    if args.ddp_worker:
        ddp_worker(*args.ddp_worker)
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
    write_json(args.out, strict_json(report))
    print(f"{len(checker.records)} checks, {len(failed)} failed: wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
