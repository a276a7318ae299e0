"""One trial: train (resuming whatever an interrupted run left), evaluate, and write its row.

``run_trial`` is what every backend calls, in a worker process of the local pool or in a
Ray Tune trial; it never raises for a failed trial: the error goes into the row (and the
traceback into ``error.txt``), so one bad point of the loss space does not stop a sweep.
"""

from __future__ import annotations

import math
import time
import traceback
from pathlib import Path

from alignuniform.io import read_json, write_json

RESULT = "result.json"
#: the label-free spectral metrics of each layer (``evaluate.spectral_numbers.SPECTRAL_KEYS``,
#: written out so that reading a sweep's table does not import torch; a test checks that
#: they agree)
SPECTRAL_COLUMNS = ("rankme", "effective_rank", "stable_rank", "alpha_req", "gaussian_w2",
                    "lidar")
# the numbers of each evaluated layer that go into the table (None where a metric is
# undefined), so that every row of a sweep has the same columns
LAYER_COLUMNS = ("alignment", "uniformity", "uniformity_bound", "linear_acc", "knn5_acc", "dim",
                 *SPECTRAL_COLUMNS)


def finished_row(trial_dir: str | Path) -> dict | None:
    """The row a finished trial wrote, or ``None`` (not run, or interrupted)."""
    path = Path(trial_dir) / RESULT
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ValueError:  # cut short by a crash between write and rename cannot happen, but
        return None     # a hand-edited or foreign file is rerun rather than trusted


def is_collapsed(row: dict, fraction: float) -> bool | None:
    """Whether the embedding's held-out uniformity got less than ``fraction`` of the way
    from 0 to its bound (``None`` when the row has no uniformity)."""
    unif, bound = row.get("embedding.uniformity"), row.get("embedding.uniformity_bound")
    if unif is None or bound is None:
        return None
    return bool(unif > fraction * bound)


def row_from_results(results: dict) -> dict:
    """Flatten ``evaluate_checkpoint``'s results into table columns ``<layer>.<number>``."""
    row: dict = {}
    for layer, numbers in results["layers"].items():
        # the usual columns first, then any other number the evaluation reports (e.g. the
        # weighted k-NN, or classifiers a later evaluation adds)
        extra = [k for k, v in numbers.items() if k not in LAYER_COLUMNS
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
        for col in (*LAYER_COLUMNS, *extra):
            value = numbers.get(col)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            row[f"{layer}.{col}"] = value
        if "fast_vs_paper" in numbers:
            for k, v in numbers["fast_vs_paper"].items():
                row[f"{layer}.{k}"] = v
            row[f"{layer}.linear_acc_paper"] = numbers["probe_paper"]["accuracy"]
    return row


def _final_loss(run_dir: Path) -> float | None:
    from alignuniform.io import read_jsonl

    path = run_dir / "epochs.jsonl"
    if not path.is_file():
        return None
    rows = read_jsonl(path)
    loss = rows[-1].get("loss") if rows else None
    return loss if isinstance(loss, float) and math.isfinite(loss) else None


def run_trial(trial: dict, trial_dir: str | Path, evaluate: dict, *,
              collapse_fraction: float = 0.2, threads: int | None = None) -> dict:
    """Train and evaluate one trial in ``trial_dir``; write and return its row.

    Args:
        trial: ``Trial.to_dict()`` (index, id, name, overrides, config).
        trial_dir: The trial's run folder (``DIR/trials/<id>``): the training run's files,
            ``eval.json``, ``result.json``, and ``error.txt`` when it failed.
        evaluate: ``EvaluateSpec`` as a dict (the keyword arguments of the evaluation).
        collapse_fraction: See :func:`is_collapsed`.
        threads: Torch threads to use here (``None``: leave as is).

    Returns:
        The row: index, id, name, status ("ok" or "failed"), error, collapsed, every
        override, the evaluation numbers per layer, epochs done, final training loss,
        train_s, eval_s, wall_s.
    """
    import torch

    from alignuniform.evaluate import evaluate_checkpoint
    from alignuniform.train import config_from_dict, train

    if threads is not None:
        torch.set_num_threads(threads)
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "error.txt").unlink(missing_ok=True)
    row: dict = {"index": trial["index"], "id": trial["id"], "name": trial["name"],
                 "status": "failed", "error": None, "collapsed": None, **trial["overrides"]}
    tic = time.perf_counter()
    train_s = eval_s = None
    try:
        config = config_from_dict(trial["config"])
        train(config, trial_dir, resume=True, progress=False)
        train_s = time.perf_counter() - tic
        ev = dict(evaluate)
        layers, dense = ev.pop("layers"), ev.pop("dense", None)
        results = evaluate_checkpoint(trial_dir / "checkpoint.pt", layers=layers,
                                      progress=False, **ev)
        write_json(trial_dir / "eval.json", results)
        row.update(row_from_results(results))
        if dense is not None:  # dense numbers on held-out scenes (issue 11)
            from alignuniform.evaluate.dense_checkpoint_eval import (
                dense_row,
                evaluate_dense_checkpoint,
            )

            dense_results = evaluate_dense_checkpoint(trial_dir / "checkpoint.pt", **dense)
            write_json(trial_dir / "dense_eval.json", dense_results)
            row.update(dense_row(dense_results))
        eval_s = time.perf_counter() - tic - train_s
        row["collapsed"] = is_collapsed(row, collapse_fraction)
        row["status"] = "ok"
    except Exception as err:  # noqa: BLE001 (recorded in the row; the sweep goes on)
        row["error"] = f"{type(err).__name__}: {err}"
        (trial_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
    row["epochs_done"] = _epochs_done(trial_dir)
    row["final_loss"] = _final_loss(trial_dir) if row["status"] == "ok" else None
    row["train_s"], row["eval_s"] = train_s, eval_s
    row["wall_s"] = time.perf_counter() - tic
    write_json(trial_dir / RESULT, row)
    return row


def _epochs_done(run_dir: Path) -> int:
    from alignuniform.io import read_jsonl

    path = run_dir / "epochs.jsonl"
    try:
        return len(read_jsonl(path)) if path.is_file() else 0
    except ValueError:
        return 0
