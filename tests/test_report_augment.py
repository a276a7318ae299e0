"""Tests for alignuniform.report.augment_grid: the augmentation study's grid and heat maps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from alignuniform.report.augment_grid import (
    augment_grid,
    augment_grid_figure,
    augment_label,
    augment_parts,
    augment_table,
)

STUDY = Path(__file__).resolve().parents[1] / "sweeps" / "augment_study.yaml"
CROP = {"scale": [0.2, 1.0]}
COLOUR = {"color_jitter": {"p": 0.8}, "color_drop": {"p": 0.2}}


def _row(i: int, augment: dict, acc: float, status: str = "ok") -> dict:
    return {"index": i, "id": f"t{i}", "name": f"t{i}", "status": status,
            "collapsed": acc < 0.2, "data.augment": augment,
            "embedding.linear_acc": acc, "embedding.knn5_acc": acc - 0.05,
            "embedding.mean_acc": acc - 0.1, "embedding.alignment": 1 - acc,
            "embedding.alignment_full": 1.5 - acc, "embedding.uniformity": -2 * acc,
            "embedding.dim": 128}


def test_parts_and_labels_name_what_the_override_turns_on():
    assert augment_parts({"base": "none"}) == ()
    assert augment_parts({"base": "none", "cutout": {}, "crop": CROP}) == ("crop", "cutout")
    # colour jitter and colour drop are one transformation, as in SimCLR's grid
    assert augment_parts({"base": "none", **COLOUR}) == ("colour",)
    assert augment_parts({"base": "none", "sobel": None, "gaussian_noise": True}) == ("noise",)
    assert augment_parts({"crop": CROP}) is None  # starts from the recipe: not a grid cell
    assert augment_label({"base": "none", "crop": CROP, "rotation": {}}) == "crop + rotate"
    assert augment_label({"base": "recipe"}) == "full recipe"
    with pytest.raises(ValueError, match="unknown augmentation component.*valid: crop"):
        augment_parts({"base": "none", "solarize": {}})
    with pytest.raises(TypeError, match="must be a mapping"):
        augment_parts(["crop"])


def test_the_shipped_study_fills_simclrs_grid_exactly_once():
    grid = yaml.safe_load(STUDY.read_text())["grid"]["data.augment"]
    rows = [_row(i, a, 0.3 + 0.01 * i) for i, a in enumerate(grid)]
    labels = [augment_label(a) for a in grid]
    assert len(set(labels)) == len(grid) == 30
    g = augment_grid(rows, "embedding.linear_acc")
    assert g.labels == ["crop", "cutout", "colour", "sobel", "noise", "blur", "rotate"]
    assert np.isfinite(g.values).all()  # 7 singles + 21 pairs: every cell, none twice
    assert set(g.references) == {"none", "full recipe"}


def test_grid_puts_each_trial_in_its_cell_and_ignores_failures():
    rows = [_row(0, {"base": "none"}, 0.10), _row(1, {}, 0.50),
            _row(2, {"base": "none", "crop": CROP}, 0.40),
            _row(3, {"base": "none", **COLOUR}, 0.20),
            _row(4, {"base": "none", **COLOUR, "crop": CROP}, 0.45),
            _row(5, {"base": "none", "sobel": {"p": 0.5}}, 0.30),
            _row(6, {"base": "none", "sobel": {}, "crop": CROP}, 0.99, status="failed"),
            _row(7, {"base": "none", "crop": CROP, "sobel": {}, "cutout": {}}, 0.35)]
    g = augment_grid(rows, "embedding.alignment")
    assert g.labels == ["crop", "colour", "sobel"]
    expect = np.array([[0.60, 0.55, np.nan], [0.55, 0.80, np.nan], [np.nan, np.nan, 0.70]])
    np.testing.assert_allclose(g.values, expect, equal_nan=True)
    assert g.references == pytest.approx({"none": 0.90, "full recipe": 0.50,
                                          "crop + sobel + cutout": 0.65})
    assert g.counts.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    missing = augment_grid([{**rows[2], "embedding.alignment": None}], "embedding.alignment")
    assert math.isnan(missing.values[0, 0]) and missing.counts[0, 0] == 0
    # trials sharing a cell (other seeds) are averaged, references too
    more = rows + [_row(9, {"base": "none", "crop": {}}, 0.30), _row(10, {}, 0.60)]
    g = augment_grid(more, "embedding.alignment")
    assert g.values[0, 0] == pytest.approx(0.65) and g.counts[0, 0] == 2
    assert g.references["full recipe"] == pytest.approx(0.45)
    recipe_variants = [_row(0, {}, 0.4), _row(1, {"flip": False}, 0.3)]
    assert augment_grid(recipe_variants, "embedding.alignment").labels == []
    with pytest.raises(ValueError, match="the grid is empty"):
        augment_grid_figure(recipe_variants, "unused.png")
    with pytest.raises(ValueError, match="no finished trial has a data.augment override"):
        augment_grid([r for r in rows if r["status"] == "failed"], "embedding.alignment")


def test_table_is_one_line_per_recipe_best_first_with_seed_spread():
    rows = [_row(0, {"base": "none"}, 0.10), _row(1, {}, 0.50),
            _row(2, {"base": "none", "crop": CROP}, 0.40),
            _row(3, {"base": "none", "crop": CROP}, 0.44),  # another seed of crop
            _row(4, {"base": "none", "crop": CROP}, 0.99, status="failed")]
    table = augment_table(rows)
    assert [r[0] for r in table.rows] == ["full recipe", "crop", "none"]
    # crop: mean of 40% and 44%, sample sd 2.83 points; alignment 1 - acc, full 1.5 - acc
    assert table.rows[1] == ["crop", "2", "42.0% ± 2.8", "37.0% ± 2.8", "32.0% ± 2.8",
                             "0.580 ± 0.028", "1.080 ± 0.028", "-0.840 ± 0.057", "0"]
    assert table.rows[0][1:3] == ["1", "50.0%"] and table.rows[2][-1] == "1"  # collapsed


def test_heat_map_figure_and_the_sweep_page_section(tmp_path):
    from matplotlib.image import imread

    from alignuniform.io import write_json
    from alignuniform.report.sweep_page import build_sweep_report
    from alignuniform.sweep.analysis import analyze_rows

    grid = yaml.safe_load(STUDY.read_text())["grid"]["data.augment"]
    rng = np.random.default_rng(0)
    rows = [_row(i, a, float(rng.uniform(0.2, 0.6))) for i, a in enumerate(grid)]
    img = imread(augment_grid_figure(rows, tmp_path / "g.png"))
    assert img.shape[1] > 2 * img.shape[0] and float(img.std()) > 0.05  # four panels, inked
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(tmp_path / "sweep.json", {"path": "augment_study.yaml", "base": "b.yaml",
                                         "seed": 0, "grid": {"data.augment": grid},
                                         "trial_list": []})
    write_json(tmp_path / "analysis.json", analyze_rows(rows, bootstrap=20))
    md = build_sweep_report(tmp_path)["markdown"].read_text()
    assert (tmp_path / "augment_grid.png").is_file() and "](augment_grid.png)" in md
    assert "Every augmentation recipe" in md and "| positives |" in md  # own and full blocks
    best = max(rows, key=lambda r: r["embedding.linear_acc"])
    # the top table names each trial's augmentation rather than printing n/a for a mapping
    assert f"| 1 | {best['id']} | {augment_label(best['data.augment'])} |" in md


def test_a_sweep_of_recipe_variants_gets_the_table_without_a_grid(tmp_path):
    from alignuniform.io import write_json
    from alignuniform.report.sweep_page import build_sweep_report
    from alignuniform.sweep.analysis import analyze_rows

    variants = [{}, {"flip": False}, {"rotation": {}}, {"crop": {"scale": [0.5, 1.0]}}]
    rows = [_row(i, a, 0.3 + 0.02 * i + 0.01 * s) for s in range(2)
            for i, a in enumerate(variants)]
    for i, r in enumerate(rows):
        r["index"], r["id"] = i, f"t{i}"
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(tmp_path / "sweep.json", {"path": "v.yaml", "base": "b.yaml", "seed": 0,
                                         "grid": {"data.augment": variants}, "trial_list": []})
    write_json(tmp_path / "analysis.json", analyze_rows(rows, bootstrap=0))
    md = build_sweep_report(tmp_path)["markdown"].read_text()
    assert not (tmp_path / "augment_grid.png").exists()
    assert "| recipe with crop | 2 | 36.5% ± 0.7 |" in md


def test_top_table_cells_name_structured_settings():
    from alignuniform.report.sweep_page import _setting

    assert _setting({}, "data.augment") == "full recipe"
    assert _setting({"width": [8, 16]}, "model.kwargs") == '{"width":[8,16]}'  # was n/a
    assert (_setting(0.5, "loss.t"), _setting("sgd", "optim.name")) == ("0.5", "sgd")
