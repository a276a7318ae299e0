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

# 3 epochs: enough for both losses to make the embedding clearly more uniform than random
# init (at 1 epoch L_contrastive moved it by 3e-4); accuracies at this size are noise
TINY = {"data": "mnist1d", "n_train": 260, "n_test": 80, "epochs": 3, "progress": False}


def _with_self_pairs(uniformity: float, n: int) -> float:
    """``log mean_{i,j} exp(-t ||x_i - x_j||^2)`` over all n^2 pairs, self-pairs included,
    from the uniformity over the pairs i < j.

    This is the quantity that cannot go below ``uniformity_bound``: the Gaussian kernel is
    positive definite and rotation invariant, so the uniform measure sigma minimises its
    energy and E(mu_n) - E(sigma) = E(mu_n - sigma) >= 0 for the points' empirical measure
    mu_n. Without the self-pairs the mean can go below the bound (n < infinity points
    spread evenly).
    """
    return math.log(1 / n + (1 - 1 / n) * math.exp(uniformity))


def test_the_bound_holds_with_self_pairs_and_not_without():
    from alignuniform.metrics import uniformity, uniformity_bound

    bound = uniformity_bound(2)
    for n in (2, 3, 16, 100):  # evenly spread on S^1: the i < j mean beats the bound
        angles = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
        u = uniformity(torch.stack([angles.cos(), angles.sin()], dim=1))
        assert u < bound
        assert _with_self_pairs(u, n) >= bound - 1e-12
    gen = torch.Generator().manual_seed(0)
    for dim in (2, 3, 8):
        x = torch.randn(300, dim, generator=gen, dtype=torch.float64)
        assert _with_self_pairs(uniformity(x), 300) >= uniformity_bound(dim)
    # tight: a many-point even spread comes within 1e-3 of the bound
    angles = torch.arange(2000, dtype=torch.float64) * 2 * math.pi / 2000
    u = uniformity(torch.stack([angles.cos(), angles.sin()], dim=1))
    assert _with_self_pairs(u, 2000) == pytest.approx(bound, abs=1e-3)


def test_findings_checks_compare_each_encoder_with_random_init():
    from alignuniform.demo import _findings

    def enc(name, linear, knn, pen_linear, uniform):
        layer = {"linear_acc": linear, "knn5_acc": knn, "alignment": 0.1, "uniformity": uniform,
                 "uniformity_bound": -1.575}
        return {"name": name, "eval": {"layers": {
            "embedding": layer, "penultimate": {**layer, "linear_acc": pen_linear}}}}

    _, checks = _findings([enc("random init", 0.3, 0.3, 0.5, -0.5),
                           enc("better", 0.4, 0.35, 0.6, -1.0),
                           enc("mixed", 0.2, 0.35, 0.5, -0.4)])
    assert checks == {
        "better": {"linear_beats_random": True, "knn5_beats_random": True,
                   "penultimate_linear_beats_random": True, "more_uniform_than_random": True},
        "mixed": {"linear_beats_random": False, "knn5_beats_random": True,
                  "penultimate_linear_beats_random": False,  # a tie does not beat
                  "more_uniform_than_random": False},
    }


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
        # accuracies are multiples of 1/80 (80 test items)
        for key in ("linear_acc", "knn5_acc"):
            assert 0.0 <= emb[key] <= 1.0 and emb[key] * 80 == pytest.approx(round(emb[key] * 80))
        assert _with_self_pairs(emb["uniformity"], 80) >= emb["uniformity_bound"] - 1e-9
        if ENCODERS[name] is not None:
            rows = [json.loads(line) for line in
                    (out / "runs" / rec["run_dir"].split("/")[-1] / "epochs.jsonl")
                    .read_text().splitlines()]
            assert [r["epoch"] for r in rows] == [1, 2, 3]
            assert {"loss", "heldout_knn_acc", "heldout_align", "heldout_uniform"} <= set(rows[0])
    base = results["encoders"]["random init"]["evaluation"]["layers"]
    for name in ("L_contrastive", "L_align + L_uniform"):
        layers = results["encoders"][name]["evaluation"]["layers"]
        emb, b_emb = layers["embedding"], base["embedding"]
        # each check is the comparison it names...
        assert results["checks"][name] == {
            "linear_beats_random": emb["linear_acc"] > b_emb["linear_acc"],
            "knn5_beats_random": emb["knn5_acc"] > b_emb["knn5_acc"],
            "penultimate_linear_beats_random":
                layers["penultimate"]["linear_acc"] > base["penultimate"]["linear_acc"],
            "more_uniform_than_random": emb["uniformity"] < b_emb["uniformity"],
        }
        # ...and both losses spread the embedding well beyond random init's near-collapse
        assert results["checks"][name]["more_uniform_than_random"]
        assert emb["uniformity"] < b_emb["uniformity"] - 0.01
    assert set(results["checks"]) == {"L_contrastive", "L_align + L_uniform"}
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3


@pytest.mark.slow
def test_demo_is_reproducible_with_the_same_seed(demo_run, tmp_path):
    out, first = demo_run
    second = run_demo(tmp_path, seed=1, **TINY)
    assert _numbers(second) == _numbers(first)
    # rerun in its folder, the demo reuses its runs and reports the time they took to train
    again = run_demo(out, seed=1, **TINY)
    for name, rec in again["encoders"].items():
        if ENCODERS[name] is not None:
            epochs = [json.loads(line) for line in
                      (out / "runs" / rec["run_dir"].split("/")[-1] / "epochs.jsonl")
                      .read_text().splitlines()]
            took = sum(e["wall_s"] for e in epochs)
            assert took > 0 and rec["train_seconds"] == pytest.approx(took)
            assert rec["train_seconds"] == first["encoders"][name]["train_seconds"]


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
