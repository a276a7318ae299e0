"""Stand-in trial functions for the sweep tests and benchmark (picklable: they run in the
local pool's worker processes)."""

from __future__ import annotations

from pathlib import Path

from alignuniform.io import write_json


def instant_trial(trial: dict, trial_dir: str, evaluate: dict, *,
                  collapse_fraction: float = 0.2, threads: int | None = None) -> dict:
    """A trial that trains nothing: the row is a function of the overrides, and a trial
    whose ``loss.w_align`` is 13 fails."""
    w = float(trial["overrides"].get("loss.w_align", 1.0))
    row = {"index": trial["index"], "id": trial["id"], "name": trial["name"],
           "status": "ok", "error": None, "collapsed": w > 8, **trial["overrides"],
           "embedding.alignment": 0.1 * w, "embedding.uniformity": -1.0 / w,
           "embedding.uniformity_bound": -1.575, "embedding.linear_acc": 0.5 - 0.01 * w,
           "embedding.knn5_acc": 0.4, "embedding.dim": 2}
    if w == 13:
        row.update(status="failed", error="FloatingPointError: the loss is nan",
                   collapsed=None)
    Path(trial_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(trial_dir) / "result.json", row)
    return row
