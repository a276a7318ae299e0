"""The sweep machinery's own cost, and what a second worker buys.

- ``overhead``: everything but training and evaluation (resolving the sweep file, trial
  folders and ``trial.json``, the worker pool, each row's ``result.json``, rewriting
  ``results.jsonl``/``.csv`` after every trial), with a trial that does nothing. The
  marginal cost per trial is the slope between a 10- and a 40-trial sweep; the fixed cost
  of a sweep (mostly starting the worker processes, which import torch) is what remains;
  the first sweep of a process also pays its own imports (its own row). Target: < 1 s per
  trial.
- ``speedup``: the same 4 small MNIST-1D trials (4 epochs on 2,000 sequences) with 1 and
  with 2 workers of one torch thread each. On an idle 2-core machine the ideal is 2x; a
  machine shared with other work gives less (the row records the load average).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import yaml

from alignuniform.io import write_json
from alignuniform.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "sweeps" / "mnist1d_base.yaml"


def noop_trial(trial: dict, trial_dir: str, evaluate: dict, *,
               collapse_fraction: float = 0.2, threads: int | None = None) -> dict:
    """A trial that trains nothing and writes its row as a real one does."""
    row = {"index": trial["index"], "id": trial["id"], "name": trial["name"], "status": "ok",
           "error": None, "collapsed": False, **trial["overrides"]}
    write_json(Path(trial_dir) / "result.json", row)
    return row


def _sweep_file(folder: Path, n: int, real: bool) -> Path:
    fixed = {"epochs": 4, "device": "cpu",
             "data.kwargs": {"n_train": 2000, "n_test": 500, "n_val": 10, "seed": 0}}
    spec = {"base": str(BASE), "set": fixed if real else {},
            "grid": {"loss.t": [float(i + 1) for i in range(n)]}}
    if real:
        spec["evaluate"] = {"layers": ["embedding"]}
    path = folder / f"sweep_{n}_{real}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _timed_sweep(path: Path, out: Path, **kwargs) -> tuple[float, float, int]:
    tic = time.perf_counter()
    spec = load_sweep(path)
    load_s = time.perf_counter() - tic
    outcome = run_sweep(spec, out, progress=False, **kwargs)
    return load_s, time.perf_counter() - tic, outcome.ok


def run() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the first sweep of a process pays the imports
        load_s, wall, ok = _timed_sweep(_sweep_file(tmp, 2, False), tmp / "warm",
                                        workers=1, threads=1, trial_fn=noop_trial)
        rows.append({"bench": "sweep_overhead", "trials": 2, "first_in_process": True,
                     "ok": ok, "load_sweep_s": load_s, "wall_s": wall})
        walls = {}
        for n in (10, 40):
            load_s, wall, ok = _timed_sweep(_sweep_file(tmp, n, False), tmp / f"o{n}",
                                            workers=1, threads=1, trial_fn=noop_trial)
            walls[n] = wall
            rows.append({"bench": "sweep_overhead", "trials": n, "ok": ok,
                         "load_sweep_s": load_s, "wall_s": wall})
        marginal = (walls[40] - walls[10]) / 30
        rows.append({"bench": "sweep_overhead", "per_trial_s": marginal,
                     "fixed_s": walls[10] - 10 * marginal, "target_per_trial_s": 1.0})
        path = _sweep_file(tmp, 4, True)
        times = {}
        for workers in (1, 2):
            load1 = os.getloadavg()[0]
            _, wall, ok = _timed_sweep(path, tmp / f"w{workers}", workers=workers, threads=1)
            times[workers] = wall
            rows.append({"bench": "sweep_speedup", "workers": workers, "threads": 1,
                         "trials": 4, "ok": ok, "wall_s": wall,
                         "cpu_count": os.cpu_count(), "loadavg_before": load1})
        rows.append({"bench": "sweep_speedup", "speedup_2_vs_1": times[1] / times[2]})
    return rows
