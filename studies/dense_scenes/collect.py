"""Copy the dense-scenes sweep's tables into this study folder: ``results.csv`` (one row per
encoder) and ``pair_quality.csv`` (one row per trial and logged step: each pair scheme's
precision and recall against the crops' ground truth on that step's training batch, from the
trials' ``log.jsonl``; ``dense.pair_quality_every`` sets the steps).

    PYTHONPATH=src python studies/dense_scenes/collect.py runs/dense_scenes_study
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

KEYS = ("data.scenes.variant", "dense.scheme", "dense.lam", "seed")
SCHEMES = ("geometric", "feature_argmax", "mutual_nn")


def pair_quality_rows(sweep: Path) -> list[dict]:
    """Every logged pair-quality step of every trial, with the trial's varied settings."""
    rows = []
    for trial_file in sorted(sweep.glob("trials/*/trial.json")):
        trial = json.loads(trial_file.read_text())
        settings = {k: trial["overrides"].get(k) for k in KEYS}
        log = trial_file.with_name("log.jsonl")
        for line in log.read_text().splitlines() if log.is_file() else []:
            step = json.loads(line)
            if f"pairs_{SCHEMES[0]}_precision" not in step:
                continue
            rows.append({"id": trial["id"], **settings, "step": step["step"],
                         **{f"{s}_{m}": step[f"pairs_{s}_{m}"] for s in SCHEMES
                            for m in ("precision", "recall")}})
    return rows


def main(sweep: str) -> None:
    here = Path(__file__).parent
    shutil.copyfile(Path(sweep) / "results.csv", here / "results.csv")
    rows = pair_quality_rows(Path(sweep))
    if not rows:
        raise SystemExit(f"no pair quality logged under {sweep}/trials (dense.pair_quality_every)")
    with (here / "pair_quality.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {here / 'results.csv'} and {here / 'pair_quality.csv'} ({len(rows)} steps)")


if __name__ == "__main__":
    main(sys.argv[1])
