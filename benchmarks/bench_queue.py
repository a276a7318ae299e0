"""MoCo's queue: the q-queue uniformity against the fork's dense (B, K) form, and training
images/s with and without a queue on the CPU config.

Times are the best of ``REPEAT`` runs in one process; peak memory is measured in a fresh
subprocess per candidate (peak RSS above the RSS once the inputs exist), as in
``bench_losses``. On a CUDA machine the loss rows also run on the GPU (peak allocated memory).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import alignuniform as au
from benchmarks._timing import best_of
from benchmarks.bench_losses import _peak_rss_kib, _rss_kib  # noqa: F401 (used by the probe)

REPEAT = 3
ROOT = Path(__file__).resolve().parents[1]


def _sphere(n: int, d: int, seed: int, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1).to(device)


def _fork_dense(q: torch.Tensor, queue: torch.Tensor, t: float = 3.0) -> torch.Tensor:
    """The fork's L_uniform with a queue, one (B, K) matrix (its queue is (d, K))."""
    sq_dists = (2 - 2 * q @ queue.T).flatten()
    sq_dists = torch.cat([sq_dists, torch.pdist(q, p=2).pow(2)])
    return sq_dists.mul(-t).exp().mean().log()


def _ours(q: torch.Tensor, queue: torch.Tensor, t: float = 3.0) -> torch.Tensor:
    return au.queue_uniform_loss(q, queue, t)


CANDIDATES = {"queue_uniform_loss": _ours, "fork_dense": _fork_dense}


def _fwd_bwd(name: str, q: torch.Tensor, queue: torch.Tensor):
    leaf = q.detach().clone().requires_grad_()
    loss = CANDIDATES[name](leaf, queue)
    loss.backward()
    return loss.detach(), leaf.grad


def _peak_extra_mib(name: str, b: int, k: int, d: int) -> float:
    code = (
        "import json, benchmarks.bench_queue as b;"
        f"b._fwd_bwd({name!r}, b._sphere(8, {d}, 0), b._sphere(64, {d}, 1));"
        f"q, queue = b._sphere({b}, {d}, 0), b._sphere({k}, {d}, 1);"
        # building the inputs peaked above their size (randn, then normalize): reset the
        # high-water mark, so the peak is the call's own
        "open('/proc/self/clear_refs', 'w').write('5'); base = b._rss_kib();"
        f"b._fwd_bwd({name!r}, q, queue);"
        "print(json.dumps(b._peak_rss_kib() - base))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def bench_loss(b: int = 256, k: int = 65_536, d: int = 128) -> list[dict]:
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        q, queue = _sphere(b, d, 0, device), _sphere(k, d, 1, device)
        ref64 = _fwd_bwd("fork_dense", q.double(), queue.double())
        for name in CANDIDATES:
            def call(name=name, q=q, queue=queue, device=device):
                out = _fwd_bwd(name, q, queue)
                if device == "cuda":
                    torch.cuda.synchronize()
                return out

            call()  # warm-up
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                call()
                mem = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                mem = _peak_extra_mib(name, b, k, d)
            seconds, (value, grad) = best_of(call, REPEAT)
            rows.append({
                "what": f"{name} fwd+bwd B={b} K={k} d={d} t=3 float32 on {device}",
                "seconds": round(seconds, 4),
                "peak_extra_mib": round(mem, 1),
                "value_abs_diff_vs_float64": abs(value.double().item() - ref64[0].item()),
                "grad_max_abs_diff_vs_float64":
                    (grad.double() - ref64[1]).abs().max().item(),
            })
    return rows


def bench_training(subset: int = 2560, epochs: int = 2) -> list[dict]:
    """images/s of the CPU configs with and without the queue (same batch, subset, seed)."""
    rows = []
    for loss in ("align_uniform", "contrastive"):
        for suffix in ("", "_queue"):
            config = ROOT / "configs" / f"cifar10_cpu_{loss}{suffix}.yaml"
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "alignuniform", "train", "--config", str(config),
                       "--out", f"{tmp}/run", "--no-progress", "device=cpu",
                       f"data.subset={subset}", f"epochs={epochs}"]
                start = time.perf_counter()
                subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
                wall = time.perf_counter() - start
                lines = Path(f"{tmp}/run/epochs.jsonl").read_text().splitlines()
                last = json.loads(lines[-1])  # the first epoch warms up
            rows.append({
                "what": f"train {config.name} ({subset} images, batch 256, CPU)",
                "images_per_s_last_epoch": round(last["images_per_s"], 1),
                "process_wall_s": round(wall, 1),
                "threads": torch.get_num_threads(),
            })
    return rows


def run() -> list[dict]:
    return bench_loss() + bench_training()


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
