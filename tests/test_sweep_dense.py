"""A sweep's dense evaluation hook: ``evaluate: {dense: {...}}`` adds each trial's dense
numbers on held-out scenes (``evaluate.dense_checkpoint_eval``) to its row."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from alignuniform.sweep.spec import EvaluateSpec, SweepError, load_sweep
from alignuniform.sweep.trial import run_trial
from alignuniform.train import config_from_dict
from tests.helpers import dense_config, dense_study_rows

DENSE = {"n_train": 12, "n_test": 8, "canvas": 32, "probe_epochs": 2, "n_pair_items": 8,
         "n_locations": 200, "variants": ["multi"]}


def test_a_trial_row_holds_the_dense_numbers(tmp_path):
    raw = dense_config()
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
    base.write_text(yaml.safe_dump(dense_config()))
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": "base.yaml", "grid": {"dense.lam": [0.0, 1.0]},
                                     "evaluate": {"dense": {"n_scenes": 10}}}))
    with pytest.raises(SweepError, match="unknown key.*n_scenes in evaluate.dense; valid keys: "
                                         "root, variants"):
        load_sweep(sweep)


def test_the_analysis_of_a_dense_sweep_holds_the_au_correlation_table(tmp_path):
    from alignuniform.evaluate.dense_checkpoint_eval import format_au_correlation_table
    from alignuniform.io import append_jsonl, write_json
    from alignuniform.sweep.analysis import analyze_sweep

    write_json(tmp_path / "sweep.json", {
        "path": "dense.yaml", "trial_list": [], "analysis": {"bootstrap": 20},
        "evaluate": {"layers": ["embedding"], "dense": {"n_train": 200}}})
    for row in dense_study_rows():
        append_jsonl(tmp_path / "results.jsonl", row)
    tables = analyze_sweep(tmp_path)["dense_au_correlation"]
    assert set(tables) == {"all", "non_collapsed"}
    cell = {(c["metrics"], c["performance"], c["variant"]): c for c in tables["all"]}
    assert cell["global", "linear acc", "multi"]["value"] == pytest.approx(1.0)
    assert cell["global", "linear acc", "multi"]["n_boot"] > 0  # the sweep's bootstrap
    text = format_au_correlation_table(tables["all"])
    assert len(text.splitlines()) == 2 + 12 and "dense (backbone)" in text


def test_the_scenes_study_expands_to_its_24_trials():
    from tests.helpers import ROOT

    spec = load_sweep(ROOT / "sweeps" / "dense_scenes_study.yaml")
    assert len(spec.trial_list) == 24
    assert spec.varying == ["seed", "data.scenes.variant", "dense.scheme", "dense.lam"]
    points = {(t.config["seed"], t.config["data"]["scenes"]["variant"],
               t.config["dense"]["scheme"], t.config["dense"]["lam"]) for t in spec.trial_list}
    schemes = {("geometric", 0.5), ("feature_argmax", 0.5), ("mutual_nn", 0.5),
               ("geometric", 0.0)}
    assert points == {(seed, variant, *scheme) for seed in (0, 1, 2)
                      for variant in ("single", "multi") for scheme in schemes}
    for t in spec.trial_list:
        d = t.config["dense"]
        assert d["pair_quality_every"] > 0 and d["w_align"] > 0  # the pairs are scored
        assert t.config["data"]["subset"] == 2048  # the pool of the scenes
    assert spec.evaluate.dense["variants"] == ["single", "multi"]


def test_a_grid_entry_over_a_section_sets_several_of_its_keys(tmp_path):
    from tests.helpers import write_sweep

    spec = load_sweep(write_sweep(tmp_path, grid={
        "loss": [{"w_align": 1.0, "t": 2.0}, {"w_align": 0.5}]}))
    first, second = (t.overrides for t in spec.trial_list)
    assert (first["loss.w_align"], first["loss.t"], second["loss.w_align"]) == (1.0, 2.0, 0.5)
    assert "loss.t" not in second
    assert spec.trial_list[1].config["loss"]["t"] == 2.0  # the base's value
    assert spec.varying == ["loss.w_align", "loss.t"]
    assert [t.name for t in spec.trial_list] == ["w_align=1 t=2", "w_align=0.5"]
    for grid, message in [({"loss": [1.0]}, "grid.loss is a config section"),
                          ({"loss": [{"radius": 1}]}, "unknown key 'loss.radius' in grid")]:
        with pytest.raises(SweepError, match=message):
            load_sweep(write_sweep(tmp_path, "bad.yaml", grid=grid))
