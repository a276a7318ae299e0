"""Spectral metrics (RankMe, alpha-ReQ, W2, LiDAR) streaming from O(d^2) state, against reptrix.

Same float32 inputs for both, each candidate in a fresh subprocess that reports its time and
its peak memory (peak RSS above the RSS once the input exists, after a small warm-up call).
Ours streams the rows in batches through :class:`alignuniform.metrics.spectral.SpectralState` (one
pass feeds RankMe and alpha-ReQ; a second state of normalised rows fed in the same loop gives
W2); reptrix runs a full PCA per metric. Our RankMe and alpha use the variants that equal
reptrix's (centred, squared; ranks 11..100 weighted 1/k), so the values are compared too.

reptrix's LiDAR materialises an (n, d, d) float32 tensor (10.5 GB for n = 10,000, d = 512),
so the peer comparison runs at ``LIDAR_PEER_N`` samples and ours also at the full
``LIDAR_N``. The two LiDARs differ by definition (see :func:`alignuniform.metrics.spectral.lidar`):
only time and memory are compared.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

N, D, BATCH = 100_000, 512, 10_000
LIDAR_N, LIDAR_PEER_N, Q = 10_000, 2_000, 8


def embeddings(n: int = N, d: int = D) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scale = torch.arange(1, d + 1, dtype=torch.float32).pow(-0.5)  # a power law, alpha = 1
    return torch.randn(n, d, generator=g) * scale


def views(n: int, q: int = Q, d: int = D) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, d, generator=g) + 0.5 * torch.randn(n, q, d, generator=g)


def ours_spectral(z: torch.Tensor) -> dict:
    from alignuniform import metrics

    raw = metrics.SpectralState(z.shape[1])
    unit = metrics.SpectralState(z.shape[1], normalize=True)
    for batch in z.split(BATCH):
        raw.update(batch)
        unit.update(batch)
    return {
        "rankme": raw.rankme(center=True, squared=True),
        "alpha": raw.alpha_req(fit_range=(11, 100), weighted=True),
        "w2": unit.gaussian_w2(),
    }


def reptrix_spectral(z: torch.Tensor) -> dict:
    from reptrix import alpha, rankme

    return {"rankme": float(rankme.get_rankme(z)), "alpha": float(alpha.get_alpha(z)[0])}


def ours_lidar(v: torch.Tensor) -> dict:
    from alignuniform import metrics

    state = metrics.LidarState(v.shape[2])
    for batch in v.split(BATCH // Q):
        state.update(batch)
    return {"lidar": state.lidar()}


def reptrix_lidar(v: torch.Tensor) -> dict:
    from reptrix import lidar

    return {"lidar": float(lidar.get_lidar(v, v.shape[0], v.shape[1]))}


def _measure(candidate: str, maker: str, *args: int) -> dict:
    """Time and peak extra memory of ``candidate(maker(*args))``, in a fresh process."""
    code = (
        "import json, time, benchmarks.bench_spectral as s, benchmarks.bench_losses as b;"
        f"f = s.{candidate}; f(s.{maker}(*{args!r}, small=True));"
        f"x = s.{maker}(*{args!r}, small=False); base = b._rss_kib();"
        "t = time.perf_counter(); out = f(x); out['s'] = time.perf_counter() - t;"
        "out['peak_extra_mib'] = (b._peak_rss_kib() - base) / 1024;"
        "print(json.dumps(out))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sized_embeddings(small: bool) -> torch.Tensor:
    return embeddings(2_000, D) if small else embeddings()


def sized_views(n: int, small: bool) -> torch.Tensor:
    return views(200) if small else views(n)


def _row(what: str, ours: dict, peer: dict, keys: tuple[str, ...]) -> dict:
    row = {
        "what": what,
        "ours_s": round(ours["s"], 2),
        "reptrix_s": round(peer["s"], 2),
        "speedup": round(peer["s"] / ours["s"], 2),
        "ours_peak_mib": round(ours["peak_extra_mib"], 1),
        "reptrix_peak_mib": round(peer["peak_extra_mib"], 1),
    }
    for key in keys:
        row[f"{key}_ours"], row[f"{key}_reptrix"] = ours[key], peer[key]
    return row


def run() -> list[dict]:
    ours = _measure("ours_spectral", "sized_embeddings")
    peer = _measure("reptrix_spectral", "sized_embeddings")
    rows = [_row(f"RankMe+alpha(+W2 ours) N={N} d={D} float32", ours, peer, ("rankme", "alpha"))]
    rows[0]["w2_ours"] = ours["w2"]
    rows.append(_row(
        f"LiDAR n={LIDAR_PEER_N} q={Q} d={D} float32",
        _measure("ours_lidar", "sized_views", LIDAR_PEER_N),
        _measure("reptrix_lidar", "sized_views", LIDAR_PEER_N), (),
    ))
    full = _measure("ours_lidar", "sized_views", LIDAR_N)
    rows.append({
        "what": f"LiDAR n={LIDAR_N} q={Q} d={D} float32 (ours only)",
        "ours_s": round(full["s"], 2), "ours_peak_mib": round(full["peak_extra_mib"], 1),
        "reptrix_would_need_mib": round(LIDAR_N * D * D * 4 / 2**20),
    })
    return rows
