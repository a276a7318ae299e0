"""The dense-scenes study's tables and pair-quality figure, from its committed tables alone.

    PYTHONPATH=src python studies/dense_scenes/analyze.py studies/dense_scenes/results.csv

(``make studies`` runs it once ``collect.py`` has copied the tables here.) Writes
``tables.md``: mIoU and linear accuracy by pre-training data and pair scheme (mean and
spread over seeds, against random initialisation), and the AU-correlation of global and
dense alignment/uniformity with mIoU and linear accuracy, with its permutation null, for
encoders pre-trained on single- and on multi-object scenes separately and together; and
``pair_quality.png``: each scheme's precision against the crops' ground truth over training
steps (``pair_quality.csv``), one panel per pre-training data.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from alignuniform.evaluate.dense_checkpoint_eval import au_correlation_table
from alignuniform.sweep.study import read_results_csv

#: mIoU of a randomly initialised encoder under the same evaluation (docs/dense.md)
RANDOM_INIT_MIOU = {"multi": 0.109, "single": 0.103}
SCHEMES = ("geometric", "feature_argmax", "mutual_nn")


def arm(row: dict) -> str:
    """The pair scheme an encoder trained with ("none": the global loss alone)."""
    return "none" if row["dense.lam"] == 0 else str(row["dense.scheme"])


def _mean_sd(values: list[float]) -> str:
    sd = f" ± {100 * np.std(values, ddof=1):.1f}" if len(values) > 1 else ""
    return f"{100 * np.mean(values):.1f}{sd}"


def performance_lines(rows: list[dict]) -> list[str]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(str(r["data.scenes.variant"]), arm(r))].append(r)
    lines = ["| pre-trained on | pairs | encoders | mIoU multi (random init "
             f"{100 * RANDOM_INIT_MIOU['multi']:.1f}) | mIoU single (random init "
             f"{100 * RANDOM_INIT_MIOU['single']:.1f}) | linear acc |",
             "|---|---|---:|---:|---:|---:|"]
    for (data, scheme), group in sorted(groups.items()):
        lines.append(f"| {data} | {scheme} | {len(group)} | "
                     f"{_mean_sd([r['dense.multi.backbone.miou'] for r in group])} | "
                     f"{_mean_sd([r['dense.single.backbone.miou'] for r in group])} | "
                     f"{_mean_sd([r['penultimate.linear_acc'] for r in group])} |")
    return lines


def au_lines(rows: list[dict]) -> list[str]:
    lines = ["| pre-trained on | metrics | predicts | scenes | n | AU-correlation [95%] | "
             "perm p | null q95 |", "|---|---|---|---|---:|---|---:|---:|"]
    subsets = {"single": [r for r in rows if r["data.scenes.variant"] == "single"],
               "multi": [r for r in rows if r["data.scenes.variant"] == "multi"],
               "both": rows}
    for name, subset in subsets.items():
        for c in au_correlation_table(subset):
            value = ("n/a" if "error" in c else
                     f"{c['value']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}]")
            null = ("| | |" if "error" in c else
                    f"| {c['p_value']:.3f} | {c['null_q95']:+.2f} |")
            lines.append(f"| {name} | {c['metrics']} | {c['performance']} | {c['variant']} | "
                         f"{c['n_encoders']} | {value} {null}")
    return lines


def pair_quality_figure(path: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_results_csv(path)
    variants = sorted({str(r["data.scenes.variant"]) for r in rows})
    fig, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4.2), squeeze=False,
                             sharey=True)
    for ax, variant in zip(axes[0], variants, strict=True):
        by: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["data.scenes.variant"] == variant:
                for scheme in SCHEMES[1:]:  # geometric pairs do not depend on the features
                    by[f"{scheme} pairs, trained with {arm(r)}"][r["step"]].append(
                        r[f"{scheme}_precision"])
        for label, steps in sorted(by.items()):
            xs = sorted(steps)
            ax.plot(xs, [np.mean(steps[x]) for x in xs], label=label,
                    ls="-" if label.startswith("feature") else "--")
        ax.set(title=f"pre-trained on {variant}-object scenes", xlabel="training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("precision against the crops' geometry\n(mean over seeds)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(path: str) -> None:
    folder = Path(path).parent
    rows = [r for r in read_results_csv(path) if r["status"] == "ok"]
    lines = ["# The dense-scenes study's tables (analyze.py, from results.csv)", "",
             f"{len(rows)} encoders, {sum(bool(r['collapsed']) for r in rows)} collapsed.", "",
             "## Performance by pre-training data and pair scheme (mean ± sd over seeds, %)",
             "", *performance_lines(rows), "",
             "## AU-correlation by pre-training data", "", *au_lines(rows), ""]
    text = "\n".join(lines)
    print(text)
    (folder / "tables.md").write_text(text, encoding="utf-8")
    quality = folder / "pair_quality.csv"
    if quality.is_file():
        print(f"figure: {pair_quality_figure(quality, folder / 'pair_quality.png')}")


if __name__ == "__main__":
    main(sys.argv[1])
