"""Spearman's rho between each metric and STS-B Spearman, over subsets of the zoo's rows.

    PYTHONPATH=src python studies/text_zoo/analyze.py studies/text_zoo/results.csv
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from alignuniform.predictivity import correlation

METRICS = ("alignment", "uniformity", "uniformity_gap", "rankme", "effective_rank",
           "stable_rank", "alpha_req", "gaussian_w2", "lidar")


def read(path: str) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in (*METRICS, "stsb_spearman"):
            r[key] = float(r[key]) if r[key] != "" else None
        r["whitened"] = r["whitened"] == "True"
    return rows


def main(path: str) -> None:
    rows = read(path)
    subsets = {
        "all rows": rows,
        "trained weights": [r for r in rows if r["weights"] == "trained"],
        "trained, raw": [r for r in rows if r["weights"] == "trained" and not r["whitened"]],
        "trained, whitened": [r for r in rows if r["weights"] == "trained" and r["whitened"]],
        "random weights": [r for r in rows if r["weights"] == "random"],
        "fine-tuning checkpoints": [r for r in rows if r["weights"] == "finetune"],
    }
    print("| rows | n | " + " | ".join(METRICS) + " |")
    print("|---|---:|" + "---:|" * len(METRICS))
    for name, subset in subsets.items():
        cells = []
        for m in METRICS:
            pts = np.array([(r[m], r["stsb_spearman"]) for r in subset
                            if r[m] is not None and r["stsb_spearman"] is not None])
            rho = correlation(pts[:, 0], pts[:, 1], "spearman") if len(pts) >= 4 else None
            cells.append("" if rho is None else f"{rho:+.2f}")
        n = sum(r["stsb_spearman"] is not None for r in subset)
        print(f"| {name} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
