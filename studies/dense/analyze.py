"""The dense study's AU-correlation table and pair-scheme table, from ``results.csv`` alone.

    PYTHONPATH=src python studies/dense/analyze.py studies/dense/results.csv

(``make studies`` runs it.) Prints and writes ``tables.md``: the ranges of accuracy and mIoU,
the AU-correlation of global and dense alignment/uniformity with linear accuracy and mIoU
(leave-one-out fit, bootstrap interval, permutation p and the null's 95th percentile), for
all encoders and for the non-collapsed ones, and each pair scheme's precision/recall against
the crops' ground truth, by how the encoders were trained.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from alignuniform.evaluate.dense_checkpoint_eval import au_correlation_table
from alignuniform.sweep.study import read_results_csv


def _au_lines(rows: list[dict]) -> list[str]:
    lines = ["| metrics | predicts | scenes | n | AU-correlation [95%] | Q² | perm p | null q95 |",
             "|---|---|---|---:|---|---:|---:|---:|"]
    for c in au_correlation_table(rows):
        if "error" in c:
            lines.append(f"| {c['metrics']} | {c['performance']} | {c['variant']} | "
                         f"{c['n_encoders']} | n/a | | | |")
            continue
        lines.append(f"| {c['metrics']} | {c['performance']} | {c['variant']} | "
                     f"{c['n_encoders']} | {c['value']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] "
                     f"| {c['q2']:.2f} | {c['p_value']:.3f} | {c['null_q95']:+.2f} |")
    return lines


def _trained_with(row: dict) -> str:
    lam = row["dense.lam"]
    return "global only (lam 0)" if lam == 0 else f"lam {lam:g}, {row['dense.scheme']}"


def _pair_lines(rows: list[dict], variant: str = "multi") -> list[str]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_trained_with(r)].append(r)
    p = f"dense.{variant}.pairs"
    lines = ["| trained with | encoders | feature argmax precision / recall | mutual NN "
             "precision / recall (pairs) | mIoU multi | mIoU single | linear acc |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, group in groups.items():
        def mean(col: str, g: list[dict] = group) -> float:
            return float(np.mean([r[col] for r in g]))
        lines.append(
            f"| {name} | {len(group)} | {mean(f'{p}.feature_argmax.precision'):.3f} / "
            f"{mean(f'{p}.feature_argmax.recall'):.3f} | {mean(f'{p}.mutual_nn.precision'):.3f}"
            f" / {mean(f'{p}.mutual_nn.recall'):.3f} ({mean(f'{p}.mutual_nn.pairs'):,.0f}) | "
            f"{mean('dense.multi.backbone.miou'):.1%} | {mean('dense.single.backbone.miou'):.1%}"
            f" | {mean('penultimate.linear_acc'):.1%} |")
    geo = rows[0]
    lines.append("")
    lines.append(f"Ground truth: {geo[f'{p}.truth_pairs.pairs']:,.0f} pairs in the first "
                 f"encoder's batch; PixPro's geometric rule: {geo[f'{p}.geometric.pairs']:,.0f} "
                 f"pairs, precision {geo[f'{p}.geometric.precision']:.3f}, recall "
                 f"{geo[f'{p}.geometric.recall']:.3f} (the same for every encoder).")
    return lines


def _range(rows: list[dict], col: str) -> str:
    values = [r[col] for r in rows]
    return f"{min(values):.1%}–{max(values):.1%}"


def main(path: str) -> None:
    rows = [r for r in read_results_csv(path) if r["status"] == "ok"]
    kept = [r for r in rows if not r["collapsed"]]
    lines = ["# The dense study's tables (analyze.py, from results.csv)", "",
             f"{len(rows)} encoders, {len(rows) - len(kept)} collapsed (embedding uniformity "
             "above 0.2 x its bound). Ranges: linear accuracy (penultimate) "
             f"{_range(rows, 'penultimate.linear_acc')}, mIoU multi "
             f"{_range(rows, 'dense.multi.backbone.miou')}, single "
             f"{_range(rows, 'dense.single.backbone.miou')}.", "",
             "## AU-correlation, all encoders", "", *_au_lines(rows), "",
             f"## AU-correlation, the {len(kept)} non-collapsed encoders", "",
             *_au_lines(kept), "",
             "## Pair schemes against the crops' ground truth (multi-object scenes)", "",
             *_pair_lines(rows), ""]
    text = "\n".join(lines)
    print(text)
    (Path(path).parent / "tables.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
