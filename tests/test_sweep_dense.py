"""A sweep's dense evaluation hook: ``evaluate: {dense: {...}}`` adds each trial's dense
numbers on held-out scenes (``evaluate.dense_pipeline``) to its row."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from alignuniform.sweep.spec import EvaluateSpec, SweepError, load_sweep
from alignuniform.sweep.trial import run_trial
from alignuniform.train import config_from_dict
from tests.test_train_dense_run import _config

DENSE = {"n_train": 12, "n_test": 8, "canvas": 32, "probe_epochs": 2, "n_pair_items": 8,
         "n_locations": 200, "variants": ["multi"]}


def test_a_trial_row_holds_the_dense_numbers(tmp_path):
    raw = _config()
    raw["data"]["kwargs"] = {"n": 48}
    trial = {"index": 0, "id": "t0", "name": "t0", "overrides": {},
             "config": config_from_dict(raw).to_dict()}
    ev = dataclasses.asdict(EvaluateSpec(layers=["embedding"], n_train=16, n_test=8,
                                         dense=DENSE))
    row = run_trial(trial, tmp_path / "t0", ev)
    assert row["status"] == "ok", row["error"]
    assert 0 <= row["dense.multi.backbone.miou"] <= 1
    assert row["dense.multi.pairs.feature_argmax.pairs"] == 8 * 4 * 4
    assert "dense.single.backbone.miou" not in row  # only the variants asked for
    assert (tmp_path / "t0" / "dense_eval.json").is_file()


def test_an_unknown_dense_option_is_refused_before_any_trial(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(_config()))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"dense.lam": [0.0, 1.0]},
                                     "evaluate": {"dense": {"n_scenes": 10}}}))
    with pytest.raises(SweepError, match="unknown key.*n_scenes in evaluate.dense; valid keys: "
                                         "root, variants"):
        load_sweep(sweep)


def test_the_analysis_of_a_dense_sweep_holds_the_au_correlation_table(tmp_path):
    from alignuniform.evaluate.dense_pipeline import format_au_correlation_table
    from alignuniform.io import append_jsonl, write_json
    from alignuniform.sweep.analysis import analyze_sweep
    from tests.test_dense_pipeline import study_rows

    write_json(tmp_path / "sweep.json", {
        "path": "dense.yaml", "trial_list": [], "analysis": {"bootstrap": 20},
        "evaluate": {"layers": ["embedding"], "dense": {"n_train": 200}}})
    for row in study_rows():
        append_jsonl(tmp_path / "results.jsonl", row)
    tables = analyze_sweep(tmp_path)["dense_au_correlation"]
    assert set(tables) == {"all", "non_collapsed"}
    cell = {(c["metrics"], c["performance"], c["variant"]): c for c in tables["all"]}
    assert cell["global", "linear acc", "multi"]["value"] == pytest.approx(1.0)
    assert cell["global", "linear acc", "multi"]["n_boot"] > 0  # the sweep's bootstrap
    text = format_au_correlation_table(tables["all"])
    assert len(text.splitlines()) == 2 + 12 and "dense (backbone)" in text
