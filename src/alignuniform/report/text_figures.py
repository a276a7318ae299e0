"""Figures for ``alignuniform text``: the alignment-uniformity plane of sentence
representations (SimCSE Figure 3 style, STS Spearman x100 in brackets) and a SimCSE run's
trajectory on it.

Each function takes a result of ``alignuniform.text.runs`` and a path, writes one PNG with
``report.figures.plane_figure`` and returns the path.
"""

from __future__ import annotations

from pathlib import Path

from alignuniform.metrics import uniformity_bound
from alignuniform.report.figures import plane_figure
from alignuniform.text.runs import TextEvalRun, TextTrainRun


def plane_points(representations: dict) -> list[dict]:
    """One point per distinct geometry; representations that coincide share a label.

    >>> same = {"align": 0.2, "uniform": -3.0, "spearman": 0.8}
    >>> [p["name"] for p in plane_points({"pooling": same, "mean": same})]
    ['pooling = mean']
    """
    points: dict[tuple, dict] = {}
    for name, r in representations.items():
        key = (round(r["align"], 5), round(r["uniform"], 5), round(r["spearman"], 5))
        if key in points:
            points[key]["name"] += f" = {name}"
        else:
            points[key] = {"name": name, "align": r["align"], "uniform": r["uniform"],
                           "sts": 100 * r["spearman"]}
    return list(points.values())


def text_eval_figure(run: TextEvalRun, path: str | Path) -> Path:
    """Each representation of ``run`` on the plane, coloured and labelled by STS Spearman,
    with the uniformity bound of the model's dimension."""
    return plane_figure(plane_points(run.result["representations"]), path,
                        bound=uniformity_bound(run.dim), color_key="sts",
                        label_fmt="{name} ({sts:.1f})",
                        title=f"{Path(run.result['model']).name} on STS-B {run.split}")


def text_train_figure(run: TextTrainRun, path: str | Path) -> Path:
    """The model before and after training, and the path of every evaluation between."""
    before, after = run.before, run.after
    points = [{"name": "before", **before}, {"name": f"after {after['step']} steps", **after}]
    for p in points:
        p["sts"] = 100 * p["spearman"]
    evals = run.result["evals"]
    return plane_figure(points, path, bound=uniformity_bound(run.dim), color_key="sts",
                        label_fmt="{name} ({sts:.1f})",
                        paths={run.config.loss: [(e["align"], e["uniform"]) for e in evals]},
                        title=f"SimCSE ({run.config.loss}) on STS-B "
                              f"{run.result['eval_split']}, every {run.config.eval_every} "
                              "steps")
