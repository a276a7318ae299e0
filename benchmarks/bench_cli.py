"""Start-up of the command line: ``alignuniform --help`` in a fresh interpreter, next to a
bare ``import torch`` (what ``--help`` cost while building the parser imported torch).

Each timing is the median of a few runs of a new process (``python -m ...``), after one
warm-up run that fills the OS file cache.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 5
SRC = Path(__file__).resolve().parents[1] / "src"


def _median_s(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    times = []
    for i in range(REPEATS + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True)
        if i:  # the first run is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict]:
    return [
        {"what": "alignuniform --help", "median_s": _median_s(["-m", "alignuniform", "--help"])},
        {"what": "alignuniform text train --help",
         "median_s": _median_s(["-m", "alignuniform", "text", "train", "--help"])},
        {"what": "python -c 'import torch' (reference)",
         "median_s": _median_s(["-c", "import torch"])},
    ]
