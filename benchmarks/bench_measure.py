"""``alignuniform measure`` on 1,000,000 x 128 float32 ``.npy`` with 1,000,000 positive pairs.

The command runs in a fresh process (``python -m alignuniform measure EMB --pairs PAIRS``),
timed from before the import to the end (json and png written); its peak memory is the
process's peak resident set (VmHWM: Python, torch, the rows and any mapped file pages).
Target: under 30 s and under 2 GB on the project's 2-core machine. The row also gives the
child's CPU time (user + sys; at most 2x the wall time with 2 threads) and the 1-minute load
average before the run, since a busy shared machine stretches the wall time. The embedding file is
freshly written, so it is in the page cache (a cold read adds the disk's time for 512 MB).

``BENCH_MEASURE_ROWS`` shrinks the set for a quick check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

N = int(os.environ.get("BENCH_MEASURE_ROWS", 1_000_000))
DIM = 128
N_PAIRS = N

_CHILD = """
import json, resource, sys, time
start = time.perf_counter()
from alignuniform.cli import main
rc = main(sys.argv[1:])
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"rc": rc, "seconds": seconds, "cpu_seconds": use.ru_utime + use.ru_stime,
                  "peak_rss_mib": peak / 1024}))
"""


def _write_inputs(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Gaussian rows (not unit norm: normalisation is part of the work) and random pairs,
    written in chunks so the benchmark process stays small."""
    rng = np.random.default_rng(seed)
    emb = folder / "emb.npy"
    out = np.lib.format.open_memmap(emb, mode="w+", dtype=np.float32, shape=(N, DIM))
    for start in range(0, N, 65_536):
        stop = min(N, start + 65_536)
        out[start:stop] = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    out.flush()
    del out
    pairs = folder / "pairs.npy"
    np.save(pairs, rng.integers(0, N, (N_PAIRS, 2)))
    return emb, pairs


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench_measure_") as tmp:
        folder = Path(tmp)
        emb, pairs = _write_inputs(folder)
        cmd = [sys.executable, "-c", _CHILD, "measure", str(emb), "--pairs", str(pairs),
               "--out", str(folder / "out"), "--no-progress"]
        load_before = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        lines = proc.stdout.strip().splitlines()
        stats = json.loads(lines[-1])
        summary = json.loads((folder / "out" / "measure.json").read_text())
    return [{
        "bench": "measure", "n": N, "dim": DIM, "n_pairs": N_PAIRS,
        "command": "alignuniform measure emb.npy --pairs pairs.npy",
        "seconds": round(stats["seconds"], 2), "cpu_seconds": round(stats["cpu_seconds"], 2),
        "peak_rss_mib": round(stats["peak_rss_mib"]), "load_before": load_before,
        "uniformity_method": summary["uniformity_method"],
        "uniformity": summary["uniformity"], "uniformity_ci95": summary["uniformity_ci95"],
        "uniformity_bound": summary["uniformity_bound"], "alignment": summary["alignment"],
        "printed": lines[:-1],
    }]
