"""The GPU rows: the core losses and the exact metric on CUDA, next to the paper's one-liner.

Times are the best of ``REPEAT`` calls, each between two CUDA events (after one warm-up call
that loads the kernels and grows the allocator); peak memory is
``torch.cuda.max_memory_allocated`` during those calls minus what was allocated before them.
Without CUDA, ``run()`` gives one row that says so. :func:`rows` runs the same rows on any
device and size (``benchmarks.gpu_check`` calls it small on the CPU to test itself); off
CUDA the times come from ``time.perf_counter`` and there is no peak memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import alignuniform as au
from alignuniform import metrics
from benchmarks._timing import best_of

REPEAT = 3

#: (uniform N, metric N, contrastive N, queue K) at full size and for a CPU self-test
SIZES = {"full": (8192, 65_536, 4096, 65_536), "small": (256, 512, 128, 1024)}


def _sphere(n: int, d: int, seed: int, device: torch.device) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return F.normalize(x, dim=1).to(device)


def _fwd_bwd(loss_fn: Callable[..., torch.Tensor], *inputs: torch.Tensor):
    leaves = [v.detach().clone().requires_grad_() for v in inputs]
    loss = loss_fn(*leaves)
    loss.backward()
    return loss.detach(), leaves[0].grad


def _paper_uniform(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float | None, Any]:
    """Best-of-``REPEAT`` seconds of ``fn()``, its peak extra memory in MiB (CUDA only,
    else None), and the last call's result."""
    out = fn()  # warm-up
    if device.type != "cuda":
        seconds, out = best_of(fn, REPEAT)
        return seconds, None, out
    out = None
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(REPEAT):
        out = None  # the previous result is not this call's working memory
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return min(times), peak, out


def _mib(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _uniform_rows(n: int, d: int, device: torch.device) -> list[dict]:
    x = _sphere(n, d, 0, device)
    t_ours, m_ours, (v_ours, g_ours) = timed(lambda: _fwd_bwd(au.uniform_loss, x), device)
    t_ref, m_ref, (v_ref, g_ref) = timed(lambda: _fwd_bwd(_paper_uniform, x), device)
    return [{
        "what": f"uniform_loss fwd+bwd N={n} d={d} float32 on {device.type}",
        "ours_s": round(t_ours, 4),
        "paper_one_liner_s": round(t_ref, 4),
        "speedup": round(t_ref / t_ours, 2),
        "peak_mib_ours": _mib(m_ours),
        "peak_mib_paper": _mib(m_ref),
        "value_rel_diff": abs(v_ours.item() - v_ref.item()) / abs(v_ref.item()),
        "grad_max_rel_diff": ((g_ours - g_ref).abs().max() / g_ref.abs().max()).item(),
    }]


def _metric_rows(n: int, d: int, device: torch.device) -> list[dict]:
    x = _sphere(n, d, 1, device)
    seconds, peak, value = timed(lambda: metrics.uniformity(x, normalize=False), device)
    return [{
        "what": f"metrics.uniformity exact N={n} d={d} on {device.type}",
        "seconds": round(seconds, 4),
        "peak_mib": _mib(peak),
        # the paper's one-liner would hold N(N-1)/2 float32 distances about three times
        "paper_one_liner_would_need_mib": round(n * (n - 1) / 2 * 4 * 3 / 2**20, 1),
        "value": value,
    }]


def _pair_loss_rows(n: int, k: int, d: int, device: torch.device) -> list[dict]:
    x, y, bank = _sphere(n, d, 2, device), _sphere(n, d, 3, device), _sphere(k, d, 4, device)
    cands = {
        "contrastive_loss": lambda: _fwd_bwd(lambda a, b: au.contrastive_loss(a, b, 0.5), x, y),
        "nt_xent_loss": lambda: _fwd_bwd(lambda a, b: au.nt_xent_loss(a, b, 0.5), x, y),
        f"queue_uniform_loss B={min(n, 256)} K={k}": lambda: _fwd_bwd(
            lambda a: au.queue_uniform_loss(a, bank, 3.0), x[:256]),
    }
    out = []
    for name, fn in cands.items():
        seconds, peak, (value, _) = timed(fn, device)
        out.append({"what": f"{name} fwd+bwd N={n} d={d} on {device.type}",
                    "seconds": round(seconds, 4), "peak_mib": _mib(peak),
                    "value": value.item()})
    return out


def rows(device: torch.device, size: str = "full", d: int = 128) -> list[dict]:
    """The GPU rows on ``device`` at ``size`` ("full" or "small", see ``SIZES``)."""
    n_uniform, n_metric, n_pair, k = SIZES[size]
    return (_uniform_rows(n_uniform, d, device) + _metric_rows(n_metric, d, device)
            + _pair_loss_rows(n_pair, k, d, device))


def run() -> list[dict]:
    if not torch.cuda.is_available():
        return [{"what": "GPU rows", "skipped": "CUDA is not available on this machine"}]
    return rows(torch.device("cuda"))


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
