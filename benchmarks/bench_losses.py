"""Core losses and metrics against the paper's one-liners and lightly, side by side.

Times are the best of ``REPEAT`` runs, measured alternately in one process; peak memory is
measured in a fresh subprocess per candidate (peak RSS above the RSS once inputs exist).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import alignuniform as au
from alignuniform import _kernel, metrics
from benchmarks._timing import best_of

REPEAT = 3


def _sphere(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


def _best(fn) -> float:
    return best_of(fn, REPEAT)[0]


def _paper_uniform(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def _fwd_bwd(loss_fn, *inputs):
    leaves = [v.detach().clone().requires_grad_() for v in inputs]
    loss = loss_fn(*leaves)
    loss.backward()
    return loss.detach(), leaves[0].grad


def _peak_rss_kib() -> int:
    # VmHWM belongs to this address space; getrusage's ru_maxrss would survive exec and
    # report the (large) parent's peak from the moment of fork
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


CANDIDATES = {
    "uniform_loss": lambda x: _fwd_bwd(au.uniform_loss, x),
    "paper_one_liner": lambda x: _fwd_bwd(_paper_uniform, x),
    "metrics.uniformity": lambda x: metrics.uniformity(x, normalize=False),
}


def _peak_extra_mib(candidate: str, n: int, d: int) -> float:
    """Peak memory of one call, in a fresh process: peak RSS minus RSS with inputs built."""
    code = (
        "import json, benchmarks.bench_losses as b;"
        # a small warm-up call first: lazily loaded kernels and libraries are not the
        # candidate's working memory
        f"b.CANDIDATES[{candidate!r}](b._sphere(64, {d}));"
        f"x = b._sphere({n}, {d}); base = b._rss_kib();"
        f"b.CANDIDATES[{candidate!r}](x);"
        "print(json.dumps(b._peak_rss_kib() - base))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def _machine_limit(x: torch.Tensor, t: float = 2.0) -> float:
    """The i<j half of the N x N x d product plus exp-and-sum of N^2/2 values."""
    n, block = x.shape[0], _kernel.DEFAULT_BLOCK
    buf = torch.empty(block, block)
    vals = torch.rand(n * (n - 1) // 2).mul_(-2 * t)

    def run():
        for a, b in _kernel._pairs(n, block):
            torch.mm(x[a[0] : a[1]], x[b[0] : b[1]].T, out=buf[: a[1] - a[0], : b[1] - b[0]])
        vals.exp().sum()

    return _best(run)


def bench_uniform(n: int = 8192, d: int = 128) -> list[dict]:
    x = _sphere(n, d)
    v_ours, g_ours = CANDIDATES["uniform_loss"](x)
    v_ref, g_ref = CANDIDATES["paper_one_liner"](x)
    t_ours = _best(lambda: CANDIDATES["uniform_loss"](x))
    t_ref = _best(lambda: CANDIDATES["paper_one_liner"](x))
    t_fwd = _best(lambda: au.uniform_loss(x))
    limit = _machine_limit(x)
    mem_ours = _peak_extra_mib("uniform_loss", n, d)
    mem_ref = _peak_extra_mib("paper_one_liner", n, d)
    return [
        {
            "what": f"uniform_loss fwd+bwd N={n} d={d} float32",
            "ours_s": round(t_ours, 3),
            "paper_one_liner_s": round(t_ref, 3),
            "speedup": round(t_ref / t_ours, 2),
            "value_rel_diff": abs(v_ours.item() - v_ref.item()) / abs(v_ref.item()),
            "grad_max_rel_diff": ((g_ours - g_ref).abs().max() / g_ref.abs().max()).item(),
            "peak_extra_mib_ours": round(mem_ours, 1),
            "peak_extra_mib_paper": round(mem_ref, 1),
            "ours_forward_only_s": round(t_fwd, 3),
            "machine_limit_s (half matmul + exp-sum)": round(limit, 3),
            "fwd_over_limit": round(t_fwd / limit, 2),
            # backward recomputes each block and does two more products: ~3 products in all
            "fwd_bwd_over_limit": round(t_ours / limit, 2),
        }
    ]


def bench_metric(n: int = 65_536, d: int = 128) -> list[dict]:
    x = _sphere(n, d, seed=1)
    start = time.perf_counter()
    exact = metrics.uniformity(x, normalize=False)
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    est = metrics.uniformity(x, normalize=False, n_pairs=1_000_000)
    t_est = time.perf_counter() - start
    mem = _peak_extra_mib("metrics.uniformity", n, d)
    return [
        {
            "what": f"metrics.uniformity exact N={n} d={d}",
            "exact_s": round(t_exact, 2),
            "peak_extra_mib": round(mem, 1),
            "reference_would_need_gib": round(n * (n - 1) / 2 * 4 * 3 / 2**30, 1),
            "value": exact,
            "sampled_1e6_pairs": float(est),
            "sampled_ci95": [est.low, est.high],
            "sampled_s": round(t_est, 2),
        }
    ]


def bench_sampled_million(k: int = 4096, n: int = 1_000_000, d: int = 128) -> list[dict]:
    """N = 10^6 embeddings whose exact value is computable: each is one of k centres.

    With counts c_a and kernel K_ab, sum_{i<j} = (c^T K c - sum_a c_a) / 2 exactly; the
    sampler sees only the 10^6 x d matrix.
    """
    gen = torch.Generator().manual_seed(2)
    centres = _sphere(k, d, seed=3).double()
    idx = torch.randint(k, (n,), generator=gen)
    counts = torch.bincount(idx, minlength=k).double()
    kern = torch.exp(-2.0 * torch.cdist(centres, centres).pow(2))
    exact = math.log((counts @ kern @ counts - counts.sum()) / 2 / (n * (n - 1) / 2))
    x = centres.float()[idx]
    start = time.perf_counter()
    est = metrics.uniformity(x, normalize=False, n_pairs=1_000_000)
    t_est = time.perf_counter() - start
    return [
        {
            "what": f"metrics.uniformity sampled, N={n:,} d={d}, 1e6 pairs",
            "exact_by_counting": exact,
            "estimate": float(est),
            "ci95": [est.low, est.high],
            "abs_error": abs(float(est) - exact),
            "seconds": round(t_est, 2),
        }
    ]


def bench_nt_xent(n: int = 4096, d: int = 128) -> list[dict]:
    from lightly.loss import NTXentLoss

    x, y = _sphere(n, d, 4), _sphere(n, d, 5)
    lightly_loss = NTXentLoss(temperature=0.5)
    cands = {
        "lightly NTXentLoss": lambda: _fwd_bwd(lightly_loss, x, y),
        "nt_xent_loss": lambda: _fwd_bwd(lambda a, b: au.nt_xent_loss(a, b, 0.5), x, y),
        "contrastive_loss": lambda: _fwd_bwd(lambda a, b: au.contrastive_loss(a, b, 0.5), x, y),
    }
    times = {name: _best(fn) for name, fn in cands.items()}
    base = times["lightly NTXentLoss"]
    return [
        {
            "what": f"{name} fwd+bwd N={n} d={d}",
            "seconds": round(s, 3),
            "vs_lightly": round(s / base, 2),
        }
        for name, s in times.items()
    ]


def run() -> list[dict]:
    return bench_uniform() + bench_metric() + bench_sampled_million() + bench_nt_xent()


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
