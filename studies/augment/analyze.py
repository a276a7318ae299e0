"""The augmentation study's figures and per-recipe table, from ``results.csv`` alone.

    PYTHONPATH=src python studies/augment/analyze.py studies/augment/results.csv

(``make studies`` runs it.) Writes the heat maps that docs/augmentations.md and the README
show, ``docs/augment_grid.png`` (output embedding) and ``docs/augment_grid_penultimate.png``,
and ``recipes.md`` beside the table: one line per recipe, the mean of its seeds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alignuniform.report.augment_grid import AUGMENT_KEY, augment_grid_figure, augment_table
from alignuniform.sweep.study import read_results_csv

DOCS = Path(__file__).resolve().parents[2] / "docs"


def main(path: str) -> None:
    rows = read_results_csv(path)
    for row in rows:  # the CSV holds each trial's override as JSON text
        row[AUGMENT_KEY] = json.loads(row[AUGMENT_KEY])
    lines = []
    for layer, name in (("embedding", "augment_grid.png"),
                        ("penultimate", "augment_grid_penultimate.png")):
        print(f"figure: {augment_grid_figure(rows, DOCS / name, layer=layer)}")
        table = augment_table(rows, layer=layer)
        lines += [f"## {layer}", "", "| " + " | ".join(table.columns) + " |",
                  "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(cells) + " |" for cells in table.rows]
        lines.append("")
    out = Path(path).with_name("recipes.md")
    out.write_text("# Per-recipe means (3 seeds), made by analyze.py from results.csv\n\n"
                   + "\n".join(lines), encoding="utf-8")
    print(f"table: {out}")


if __name__ == "__main__":
    main(sys.argv[1])
