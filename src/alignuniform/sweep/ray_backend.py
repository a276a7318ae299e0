"""The Ray Tune backend: the same trials, the same folders, the same table, on a Ray
instance (local, or a cluster with ``address="auto"``).

Each trial is one Tune trial running :func:`alignuniform.sweep.trial.run_trial` with the
sweep file's ``resources`` (e.g. ``{cpu: 1, gpu: 0.25}``) and ``int(cpu)`` torch threads.
Trials write their run folders under ``DIR/trials/<id>`` as in the local backend (on a
cluster ``DIR`` must be on storage every node sees); the row also travels back through
Tune's results, so the driver writes the table. Tune's own records go to ``DIR/ray``.
No scheduling of our own: Tune places the trials.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from alignuniform.io import write_json
from alignuniform.sweep.spec import SweepError, SweepSpec, Trial


def require_ray():
    """Import Ray Tune, or say which extra to install."""
    try:
        import ray
        from ray import tune
    except ImportError as err:
        raise SweepError("--backend ray needs Ray Tune: pip install 'alignuniform[ray]'"
                         ) from err
    return ray, tune


def _trainable(config: dict, trials: list, out_dir: str, evaluate: dict,
               collapse_fraction: float, threads: int, trial_fn) -> None:
    from ray import tune

    trial = trials[config["index"]]
    row = trial_fn(trial, str(Path(out_dir) / "trials" / trial["id"]), evaluate,
                   collapse_fraction=collapse_fraction, threads=threads)
    tune.report({"row_json": json.dumps(row), "ok": row.get("status") == "ok"})


def run_ray(todo: list[Trial], spec: SweepSpec, out_dir: Path, *, workers: int | None,
            address: str | None, trial_fn: Callable[..., dict],
            on_row: Callable[[dict], None]) -> None:
    """Run ``todo`` as Ray Tune trials; call ``on_row`` with each trial's row."""
    ray, tune = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    threads = max(1, int(spec.resources.cpu))
    trainable = tune.with_resources(
        tune.with_parameters(
            _trainable, trials=[t.to_dict() for t in todo], out_dir=str(out_dir.resolve()),
            evaluate=dataclasses.asdict(spec.evaluate),
            collapse_fraction=spec.analysis.collapse_fraction, threads=threads,
            trial_fn=trial_fn),
        resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(todo))))},
        tune_config=tune.TuneConfig(max_concurrent_trials=workers),
        run_config=tune.RunConfig(storage_path=str((out_dir / "ray").resolve()),
                                  name="tune", verbose=0),
    )
    grid = tuner.fit()
    seen = set()
    for result in grid:
        index = (result.config or {}).get("index")
        if index is None:
            continue
        trial = todo[index]
        seen.add(index)
        metrics = result.metrics or {}
        if "row_json" in metrics:
            row = json.loads(metrics["row_json"])
        else:
            row = {"index": trial.index, "id": trial.id, "name": trial.name,
                   "status": "failed", "error": f"Ray trial error: {result.error}",
                   "collapsed": None, **trial.overrides}
        # on one machine the trial wrote it already; on a cluster the folder may be remote
        write_json(out_dir / "trials" / trial.id / "result.json", row)
        on_row(row)
    for index, trial in enumerate(todo):
        if index not in seen:
            row = {"index": trial.index, "id": trial.id, "name": trial.name,
                   "status": "failed", "error": "Ray returned no result for this trial",
                   "collapsed": None, **trial.overrides}
            write_json(out_dir / "trials" / trial.id / "result.json", row)
            on_row(row)
