"""evaluate.dense_checkpoint_eval: a checkpoint's dense numbers on held-out scenes, the flat row a
sweep adds, and the AU-correlation table of a study."""

from __future__ import annotations

import pytest

from alignuniform import predictivity
from alignuniform.evaluate.dense_checkpoint_eval import (
    au_correlation_table,
    dense_row,
    evaluate_dense_checkpoint,
    format_au_correlation_table,
)
from alignuniform.train import config_from_dict, train
from tests.helpers import dense_config, dense_study_rows

SMALL = {"n_train": 12, "n_test": 8, "canvas": 32, "probe_epochs": 2, "n_pair_items": 8,
         "n_locations": 200, "device": "cpu"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense") / "run"
    raw = dense_config()
    raw["data"]["kwargs"] = {"n": 48}  # a pool for the scenes of both splits
    return train(config_from_dict(raw), out, progress=False) / "checkpoint.pt"


def test_dense_numbers_of_a_checkpoint(checkpoint):
    results = evaluate_dense_checkpoint(checkpoint, **SMALL)
    # seeded: scenes, views, probe, sampled locations
    assert dense_row(evaluate_dense_checkpoint(checkpoint, **SMALL)) == dense_row(results)
    for variant in ("single", "multi"):
        for name in ("backbone", "dense"):
            numbers = results[variant][name]
            assert 0 <= numbers["miou"] <= numbers["pixel_accuracy"] + 1e-9 <= 1 + 1e-9
            assert 0 <= numbers["dense_alignment"] <= 4  # squared distance of unit vectors
            assert -4 <= numbers["dense_uniformity"] <= 0 and numbers["n_pairs"] > 0
        schemes = results[variant]["pair_schemes"]
        assert schemes["geometric"]["recall"] == 1.0  # PixPro 0.7 contains the nearest bin
        assert schemes["feature_argmax"]["pairs"] == 8 * 4 * 4  # one per view-1 location
    assert results["settings"]["dataset"] == "synthetic"
    row = dense_row(results)
    assert row["dense.multi.backbone.miou"] == results["multi"]["backbone"]["miou"]
    assert row["dense.single.pairs.mutual_nn.recall"] == (
        results["single"]["pair_schemes"]["mutual_nn"]["recall"])
    assert len(row) == 2 * (2 * 6 + 3 * 3 + 1)


def test_random_init_differs_from_the_trained_weights(checkpoint):
    kwargs = {**SMALL, "variants": ["multi"], "which": ["dense"]}
    trained = evaluate_dense_checkpoint(checkpoint, **kwargs)["multi"]["dense"]
    initial = evaluate_dense_checkpoint(checkpoint, random_init=True, **kwargs)["multi"]["dense"]
    assert trained["dense_alignment"] != initial["dense_alignment"]


@pytest.mark.parametrize("kwargs, message", [
    ({"variants": ["crowded"]}, "variants must be among"),
    ({"which": ["pixels"]}, "which must be among"),
])
def test_bad_arguments(checkpoint, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_dense_checkpoint(checkpoint, **{**SMALL, **kwargs})


def test_the_table_reads_each_cell_from_its_own_columns():
    rows = dense_study_rows()
    rows.append({"embedding.alignment": 1.0})  # a failed trial: left out of every cell
    table = au_correlation_table(rows, n_boot=50)
    assert len(table) == 2 * 2 * 3
    cell = {(c["metrics"], c["performance"], c["variant"]): c for c in table}
    assert cell["global", "linear acc", "single"]["value"] == pytest.approx(1.0)
    assert cell["dense (backbone)", "mIoU", "multi"]["value"] == pytest.approx(1.0)
    assert cell["dense (backbone)", "mIoU", "single"]["value"] < 0.9
    expected = predictivity.au_correlation(
        [r["dense.single.dense.dense_alignment"] for r in rows[:-1]],
        [r["dense.single.dense.dense_uniformity"] for r in rows[:-1]],
        [r["dense.single.backbone.miou"] for r in rows[:-1]], n_boot=50)
    assert cell["dense (head)", "mIoU", "single"]["value"] == pytest.approx(expected.value)
    assert all(c["n_encoders"] == 12 for c in table)
    # beside the interval, the permutation null: a planted perfect fit is significant, and
    # the null's 95th percentile is what no information reaches with 12 encoders
    null = predictivity.au_correlation_null(
        [r["dense.single.dense.dense_alignment"] for r in rows[:-1]],
        [r["dense.single.dense.dense_uniformity"] for r in rows[:-1]],
        [r["dense.single.backbone.miou"] for r in rows[:-1]], n_perm=999)
    head = cell["dense (head)", "mIoU", "single"]
    assert (head["p_value"], head["null_q95"], head["n_perm"]) == (
        null["p_value"], null["null_q95"], 999)
    perfect = cell["global", "linear acc", "single"]
    assert perfect["p_value"] == pytest.approx(1 / 1000) and perfect["null_q95"] < 0.9
    assert "perm p" in format_au_correlation_table(table)


def test_too_few_encoders_is_an_error_cell_not_an_exception():
    rows = [{"embedding.alignment": 0.1 * k, "embedding.uniformity": -k,
             "penultimate.linear_acc": 0.1 + 0.01 * k} for k in range(3)]
    cell = au_correlation_table(rows, variants=["single"], n_boot=0)[0]
    assert "at least 5 encoders" in cell["error"] and cell["n_encoders"] == 3
