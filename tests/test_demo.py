"""Tests for alignuniform.demo, the demo/report CLI commands and report.run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from alignuniform.cli import main
from alignuniform.demo import ENCODERS, run_demo
from alignuniform.report.run import positive_pair_distances, report_for_run

TINY = {"data": "mnist1d", "n_train": 260, "n_test": 80, "epochs": 1, "progress": False}


def _numbers(results: dict) -> dict:
    """Every evaluation number of a demo run (timings excluded)."""
    out = {}
    for name, rec in results["encoders"].items():
        for layer, vals in rec["evaluation"]["layers"].items():
            for key in ("linear_acc", "knn5_acc", "knn_weighted_acc", "alignment",
                        "uniformity", "uniformity_bound"):
                out[f"{name}/{layer}/{key}"] = vals[key]
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, seed=1, **TINY)


@pytest.mark.slow
def test_demo_writes_report_results_and_runs(demo_run):
    out, results = demo_run
    for name in ("report.html", "report.md", "results.json", "s1.png", "plane.png",
                 "curves.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text()) == results
    assert list(results["encoders"]) == list(ENCODERS)
    assert results["data"]["n_train"] == 260 and results["data"]["n_test"] == 80
    assert results["uniformity_bound"] == pytest.approx(-1.5747, abs=1e-3)  # S^1, t = 2
    for name, rec in results["encoders"].items():
        emb = rec["evaluation"]["layers"]["embedding"]
        assert emb["dim"] == 2
        assert 0.0 <= emb["linear_acc"] <= 1.0 and 0.0 <= emb["knn5_acc"] <= 1.0
        assert emb["uniformity"] >= emb["uniformity_bound"] - 1e-6
        if ENCODERS[name] is not None:
            rows = [json.loads(line) for line in
                    (out / "runs" / rec["run_dir"].split("/")[-1] / "epochs.jsonl")
                    .read_text().splitlines()]
            assert len(rows) == 1
            assert {"loss", "heldout_knn_acc", "heldout_align", "heldout_uniform"} <= set(rows[0])
    assert set(results["checks"]) == {"L_contrastive", "L_align + L_uniform"}
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3


@pytest.mark.slow
def test_demo_is_reproducible_with_the_same_seed(demo_run, tmp_path):
    _, first = demo_run
    second = run_demo(tmp_path, seed=1, **TINY)
    assert _numbers(second) == _numbers(first)


def test_demo_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown demo data"):
        run_demo(tmp_path, data="mnist")
    with pytest.raises(ValueError, match="feat_dim"):
        run_demo(tmp_path, feat_dim=1)
    with pytest.raises(ValueError, match="epochs"):
        run_demo(tmp_path, epochs=0)
    assert main(["demo", "--out", str(tmp_path), "--epochs", "0"]) == 2


def test_positive_pair_distances_match_heldout_alignment():
    from alignuniform.data.mnist1d import build_dataset, mnist1d_view
    from alignuniform.evaluate import heldout_alignment
    from alignuniform.models.conv1d import Conv1dEncoder

    torch.manual_seed(0)
    model = Conv1dEncoder(feat_dim=2, width=8, hidden_dim=16).eval()
    test = build_dataset(None, "test", n_train=40, n_test=50, n_val=0, seed=2)
    dist = positive_pair_distances(model, test, mnist1d_view, seed=7)
    assert dist.shape == (50,) and np.all(dist >= 0) and np.all(dist <= 2 + 1e-6)
    expected = heldout_alignment(model, test, mnist1d_view, seed=7, progress=False)
    assert float(np.mean(dist**2)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.slow
def test_report_for_a_training_run(demo_run, tmp_path):
    out, results = demo_run
    rec = results["encoders"]["L_align + L_uniform"]
    run_dir = out / "runs" / "l_align_l_uniform"
    assert rec["run_dir"] == str(run_dir)
    (run_dir / "eval").mkdir(exist_ok=True)
    (run_dir / "eval" / "eval.json").write_text(json.dumps(rec["evaluation"]))
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--no-progress"]) == 0
    for name in ("report.html", "report.md", "results.json", "s1.png", "plane.png",
                 "curves.png"):
        assert (tmp_path / "rep" / name).is_file(), name
    written = report_for_run(run_dir, tmp_path / "rep2", progress=False)
    assert written["html"].read_text().count('src="data:image/png;base64,') == 3
    saved = json.loads(written["results"].read_text())
    assert math.isclose(
        saved["encoders"][next(iter(saved["encoders"]))]["layers"]["embedding"]["uniformity"],
        rec["evaluation"]["layers"]["embedding"]["uniformity"])


def test_report_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        report_for_run(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
