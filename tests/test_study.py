"""Tests for alignuniform.sweep.study: a study's analysis from its results.csv alone, and
the committed studies against an independent recomputation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from alignuniform.cli import main
from alignuniform.sweep.study import analyze_study, read_results_csv, study_rows

STUDIES = Path(__file__).resolve().parents[1] / "studies"


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _table(tmp_path: Path, n: int = 14) -> Path:
    rng = np.random.default_rng(0)
    acc = rng.uniform(0.2, 0.9, n)
    rows = [{"id": f"t{i}", "status": "ok", "embedding.alignment": 1 - a + rng.normal(0, 0.1),
             "embedding.uniformity": -3 * a + rng.normal(0, 0.3),
             "embedding.rankme": 10 * a + rng.normal(0, 2), "embedding.linear_acc": a,
             "embedding.knn5_acc": a + rng.normal(0, 0.05), "penultimate.linear_acc": 0.5,
             "model.feat_dim": 2 + 30 * (i % 2), "collapsed": i == 3}
            for i, a in enumerate(acc)]
    rows.append({**rows[0], "id": "failed", "status": "failed", "embedding.linear_acc": ""})
    folder = tmp_path / "toy"
    folder.mkdir()
    _write(folder / "results.csv", rows)
    return folder


def test_the_analysis_is_the_tables_and_skips_failed_trials(tmp_path):
    folder = _table(tmp_path)
    result = analyze_study(folder, n_boot=50, n_perm=99)
    saved = json.loads((folder / "analysis.json").read_text())
    assert saved == json.loads(json.dumps(result)) and saved["n_rows"] == 15
    rows = [r for r in read_results_csv(folder / "results.csv") if r["status"] == "ok"]
    assert {type(r["collapsed"]) for r in rows} == {bool}
    cell = saved["table"]["accuracies"]["linear_acc"]["metrics"]["rankme"]
    want = stats.kendalltau([r["embedding.rankme"] for r in rows],
                            [r["embedding.linear_acc"] for r in rows]).statistic
    assert cell["n"] == 14 and cell["kendall"]["value"] == pytest.approx(want, abs=1e-12)
    assert cell["direction"] == "higher" and set(saved["table"]["accuracies"]) == {
        "linear_acc", "knn5_acc"}  # mean_acc is not in the table


def test_rows_keep_one_layer_named_without_its_prefix():
    rows = study_rows([{"status": "ok", "embedding.rankme": 3.0, "penultimate.rankme": 9.0,
                        "loss.t": 2.0}, {"status": "failed", "embedding.rankme": 1.0}],
                      layer="penultimate", groups="loss.t")
    assert rows == [{"rankme": 9.0, "loss.t": 2.0}]


def test_the_cli_analyses_every_study_and_draws_the_heat_maps(tmp_path, capsys):
    _table(tmp_path)
    assert main(["sweep", "study", str(tmp_path), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "toy (14 encoders, embedding, linear_acc; Kendall's tau):" in out and "rankme" in out
    for name in ("toy/analysis.json", "kendall_linear_acc.png", "kendall_knn5_acc.png"):
        assert (tmp_path / name).is_file(), name
    assert main(["sweep", "study", str(tmp_path / "none")]) == 2


def test_every_committed_study_matches_a_recomputation_from_its_table():
    """analysis.json's point estimates are what scipy computes from results.csv."""
    studies = sorted(p.parent for p in STUDIES.glob("*/analysis.json"))
    assert studies, f"no committed study under {STUDIES}"
    for folder in studies:
        saved = json.loads((folder / "analysis.json").read_text())
        rows = [r for r in read_results_csv(folder / "results.csv")
                if r.get("status", "ok") == "ok"]
        columns = saved["columns"]
        for acc, entry in saved["table"]["accuracies"].items():
            for metric, cell in entry["metrics"].items():
                m_col, a_col = columns[metric], columns[acc]
                pairs = [(r[m_col], r[a_col]) for r in rows
                         if isinstance(r.get(m_col), float) and isinstance(r.get(a_col), float)]
                m, a = np.array(pairs).T
                assert cell["n"] == len(pairs), (folder.name, acc, metric)
                for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
                    want = fn(m, a).statistic
                    got = cell[name]["value"]
                    assert got == pytest.approx(want, abs=1e-9), (folder.name, acc, metric, name)


def test_study_yaml_sets_the_groups_and_is_checked(tmp_path):
    folder = _table(tmp_path)
    (folder / "study.yaml").write_text("groups: model.feat_dim\n")
    result = analyze_study(folder, n_boot=10, n_perm=9)
    cell = result["within"]["accuracies"]["linear_acc"]["metrics"]["rankme"]
    assert result["groups"] == "model.feat_dim" and cell["within"]["kendall"] is not None
    assert cell["regret"]["n_groups"] == 2  # one pick per width
    assert result["table"]["accuracies"]["linear_acc"]["fit"]["cv"] == "leave-one-out"
    (folder / "study.yaml").write_text("group: x\n")
    with pytest.raises(ValueError, match="only the keys layer, groups and accuracies"):
        analyze_study(folder, n_boot=10, n_perm=9)


def test_an_accuracy_can_be_read_from_a_column_of_no_layer(tmp_path):
    folder = _table(tmp_path)
    rows = read_results_csv(folder / "results.csv")
    header = list(rows[0]) + ["dense.multi.backbone.miou"]
    for r in rows:  # an accuracy the metric ranks exactly backwards
        r["dense.multi.backbone.miou"] = -r["embedding.rankme"] if r["status"] == "ok" else None
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    (folder / "study.yaml").write_text(
        "accuracies: [linear_acc, {miou_multi: dense.multi.backbone.miou}]\n")
    result = analyze_study(folder, n_boot=10, n_perm=9)
    assert result["columns"]["miou_multi"] == "dense.multi.backbone.miou"
    assert result["columns"]["rankme"] == "embedding.rankme"
    cell = result["table"]["accuracies"]["miou_multi"]["metrics"]["rankme"]
    assert cell["kendall"]["value"] == pytest.approx(-1.0)
    assert set(result["table"]["accuracies"]) == {"linear_acc", "miou_multi"}
    (folder / "study.yaml").write_text("accuracies: [{a: x, b: y}]\n")
    with pytest.raises(ValueError, match="one-key mappings"):
        analyze_study(folder, n_boot=10, n_perm=9)
