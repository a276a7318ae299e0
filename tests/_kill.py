"""Kill a training run with SIGKILL part-way through an epoch, for the exact-resume tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def logged_steps(path: Path) -> list[dict]:
    """The complete lines of a ``log.jsonl`` that a live run may be appending to."""
    text = path.read_text() if path.is_file() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def kill_mid_epoch(config_path: Path, run: Path, epoch: int = 2) -> list[dict]:
    """Run ``alignuniform train`` on ``config_path`` into ``run`` in a child process, freeze
    it (SIGSTOP) once epoch ``epoch`` has begun, then ``kill -9`` it; return the steps it had
    logged by then."""
    cmd = [sys.executable, "-m", "alignuniform", "train", "--config", str(config_path),
           "--out", str(run), "--no-progress"]
    # same thread count as this process: float sums in the kernels depend on it
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads())))
    log = run / "log.jsonl"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if any(s["epoch"] == epoch for s in logged_steps(log)):
                break  # the epoch before is checkpointed and this one has begun
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)  # freeze it, check where it is, then kill -9
        steps = logged_steps(log)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return steps
