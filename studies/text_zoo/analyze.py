"""The zoo's figures and its per-subset table, from ``results.csv`` alone.

    PYTHONPATH=src python studies/text_zoo/analyze.py studies/text_zoo/results.csv

(``make studies`` runs it.) Prints and writes ``subsets.md`` (Spearman's rho between each
metric and STS-B Spearman over subsets of the rows: by weights, raw or whitened, and by
model when the table holds several) and redraws ``zoo_plane.png`` and ``zoo_gap.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from alignuniform.predictivity import correlation
from alignuniform.report.zoo_figures import zoo_gap_figure, zoo_plane_figure
from alignuniform.sweep.study import read_results_csv

METRICS = ("alignment", "uniformity", "uniformity_gap", "rankme", "effective_rank",
           "stable_rank", "alpha_req", "gaussian_w2", "lidar")


def subsets(rows: list[dict]) -> dict[str, list[dict]]:
    """The row subsets of the table, across models and (with several) per model."""
    def of(rows: list[dict]) -> dict[str, list[dict]]:
        trained = [r for r in rows if r["weights"] == "trained"]
        return {
            "all rows": rows,
            "trained weights": trained,
            "trained, raw": [r for r in trained if not r["whitened"]],
            "trained, whitened": [r for r in trained if r["whitened"]],
            "random weights": [r for r in rows if r["weights"] == "random"],
            "fine-tuning checkpoints": [r for r in rows if r["weights"] == "finetune"],
        }

    out = of(rows)
    models = list(dict.fromkeys(r["model"] for r in rows))
    if len(models) > 1:
        for model in models:
            out.update({f"{model}: {name}": group
                        for name, group in of([r for r in rows if r["model"] == model]).items()})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| rows | n | " + " | ".join(METRICS) + " |", "|---|---:|" + "---:|" * len(METRICS)]
    for name, subset in subsets(rows).items():
        cells = []
        for m in METRICS:
            pts = np.array([(r[m], r["stsb_spearman"]) for r in subset
                            if r[m] is not None and r["stsb_spearman"] is not None])
            rho = correlation(pts[:, 0], pts[:, 1], "spearman") if len(pts) >= 4 else None
            cells.append("" if rho is None else f"{rho:+.2f}")
        n = sum(r["stsb_spearman"] is not None for r in subset)
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(path: str) -> None:
    rows = read_results_csv(path)
    folder = Path(path).parent
    text = table(rows)
    print(text, end="")
    (folder / "subsets.md").write_text(
        "# Spearman's rho of each metric with STS-B Spearman, by subset (analyze.py)\n\n" + text,
        encoding="utf-8")
    for figure in (zoo_plane_figure(rows, folder / "zoo_plane.png"),
                   zoo_gap_figure(rows, folder / "zoo_gap.png")):
        print(f"figure: {figure}")


if __name__ == "__main__":
    main(sys.argv[1])
