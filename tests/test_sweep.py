"""Tests for alignuniform.sweep: sweep files, trials and their folders, resume, failures,
the tables, the analysis, the report and the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from alignuniform.cli import main
from alignuniform.io import read_json, read_jsonl
from alignuniform.sweep import SweepError, config_keys, load_sweep, run_sweep
from alignuniform.sweep.analysis import analyze_rows, format_table
from tests.helpers import SWEEP_BASE, TINY_SET, instant_trial, write_sweep

ROOT = Path(__file__).resolve().parents[1]
# ---------------------------------------------------------------------------------------------
# sweep files


def test_grid_random_product_and_stable_ids(tmp_path):
    path = write_sweep(tmp_path, grid={"model.feat_dim": [2, 8]},
                       random={"loss.t": {"int": [1, 8]}, "loss.w_align":
                               {"loguniform": [0.1, 10]}, "loss.alpha": {"choice": [1, 2]}},
                       trials=3)
    spec = load_sweep(path)
    assert len(spec.trial_list) == 6
    assert len({t.id for t in spec.trial_list}) == 6
    # draws outermost: consecutive trials alternate over the grid
    assert [t.overrides["model.feat_dim"] for t in spec.trial_list[:4]] == [2, 8, 2, 8]
    for t in spec.trial_list:
        assert 1 <= t.overrides["loss.t"] <= 8 and 0.1 <= t.overrides["loss.w_align"] <= 10
        assert float(t.overrides["loss.t"]).is_integer() and t.overrides["loss.alpha"] in (1, 2)
        assert t.config["loss"]["t"] == t.overrides["loss.t"]
        assert t.overrides["seed"] == 0 and "feat_dim=" in t.name
    # random keys are drawn afresh per trial, not once for the sweep
    assert len({t.overrides["loss.w_align"] for t in spec.trial_list}) == 6
    # the bounds above hold for any draw in range; the distributions are checked here: "int"
    # includes both ends, evenly, and "loguniform" is uniform in log (half the draws below
    # the geometric midpoint 1, where a plain uniform on [0.1, 10] puts 9%)
    many = load_sweep(write_sweep(tmp_path, name="many.yaml", random={
        "loss.t": {"int": [1, 8]}, "loss.w_align": {"loguniform": [0.1, 10]}}, trials=800))
    ts = np.array([t.overrides["loss.t"] for t in many.trial_list])
    ws = np.array([t.overrides["loss.w_align"] for t in many.trial_list])
    assert (ts == ts.round()).all() and set(ts) == set(range(1, 9))
    assert np.bincount(ts.astype(int), minlength=9)[1:].min() > 60  # 100 each, expected
    assert 0.45 < (ws < 1).mean() < 0.55 and 0.1 <= ws.min() and ws.max() <= 10
    again = load_sweep(path)
    assert [t.id for t in again.trial_list] == [t.id for t in spec.trial_list]
    assert again.fingerprint() == spec.fingerprint()
    other = load_sweep(path, seed=1)
    assert {t.id for t in other.trial_list}.isdisjoint({t.id for t in spec.trial_list})
    # the id hashes the overrides, not their order in the file or the file's place
    moved = tmp_path / "sub"
    moved.mkdir()
    text = yaml.safe_load(path.read_text())
    text["random"] = dict(reversed(list(text["random"].items())))
    (moved / "s.yaml").write_text(yaml.safe_dump(text, sort_keys=False))
    grid_only = load_sweep(write_sweep(tmp_path, "g.yaml", grid={"loss.t": [1, 2]}))
    assert [t.overrides["loss.t"] for t in grid_only.trial_list] == [1.0, 2.0]
    assert grid_only.trial_list[0].id == load_sweep(
        write_sweep(moved, "g2.yaml", grid={"loss.t": [1.0, 5]})).trial_list[0].id


@pytest.mark.parametrize("fields, match", [
    ({"grid": {"loss.temperature": [1, 2]}}, r"unknown key 'loss.temperature' in grid; "
                                             r"valid keys: data.name, .*loss.tau"),
    ({"grid": {"loss.t": [1]}, "epochz": 3}, r"unknown key\(s\) epochz"),
    ({"grid": {}}, "grid is empty"),
    ({"grid": {"loss.t": []}}, r"grid.loss.t must be a non-empty list"),
    ({"set": {"epochs": 1}}, "has no search space"),
    ({"grid": {"loss.tau": ["warm"]}}, r"trial 0 .*loss.tau must be float, got 'warm'"),
    ({"grid": {"epochs": [1.5]}}, r"epochs must be int, got 1.5"),
    ({"grid": {"loss.t": [1, 1.0]}}, "trials 0 and 1 have identical overrides"),
    ({"grid": {"loss.alpha": [1]}, "random": {"loss.t": {"choice": [2]}}, "trials": 2},
     "identical overrides .*too small"),
    ({"random": {"loss.t": {"int": [3, 1]}}, "trials": 2}, r"needs finite lo < hi"),
    ({"random": {"loss.t": {"gauss": [0, 1]}}, "trials": 2}, r"must be one of \{choice"),
    ({"random": {"loss.t": {"int": [1, 4]}}}, r"trials must be an int >= 1"),
    ({"grid": {"loss.t": [1]}, "evaluate": {"layers": ["head"]}}, "evaluate.layers"),
    ({"grid": {"loss.t": [1]}, "evaluate": {"k": "five"}}, r"evaluate.k must be int"),
    ({"grid": {"loss.t": [1]}, "set": {"loss.t": 2}}, r"loss.t appear in both set and grid"),
    ({"grid": {"loss.w_align": [0]}, "set": {"loss.w_uniform": 0}},
     "at least one weight must be positive"),
])
def test_bad_sweep_files_fail_before_any_trial(tmp_path, fields, match):
    spec = {"base": str(SWEEP_BASE), **fields}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SweepError, match=match):
        load_sweep(path)


def test_sweep_sections_follow_the_training_configs_typing_rules(tmp_path):
    # the rules of alignuniform._typed, as for train configs: YAML's "1e-4" string is a
    # number where the field is a float, non-finite values and unknown keys are refused
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {SWEEP_BASE}\ngrid: {{loss.t: [1]}}\n"
                    "analysis: {collapse_fraction: 2e-1}\nset: {optim.weight_decay: 1e-4}\n")
    spec = load_sweep(path)
    assert spec.analysis.collapse_fraction == 0.2
    assert spec.trial_list[0].config["optim"]["weight_decay"] == 1e-4
    for fields, match in [({"evaluate": {"alpha": float("nan")}},
                           "evaluate.alpha must be a finite number, got nan"),
                          ({"resources": {"cpu": float("inf")}},
                           "resources.cpu must be a finite number"),
                          ({"analysis": {"tops": 3}},
                           r"unknown key\(s\) analysis.tops; valid keys in analysis: "
                           r"collapse_fraction, bootstrap, top")]:
        bad = write_sweep(tmp_path, "bad.yaml", grid={"loss.t": [1]}, **fields)
        with pytest.raises(SweepError, match=match):
            load_sweep(bad)
    # global_batch is the engine's key, not the loss section's
    assert "global_batch" in config_keys() and "loss.global_batch" not in config_keys()


def test_missing_base_and_unsafe_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("base: nowhere.yaml\ngrid: {loss.t: [1]}\n")
    with pytest.raises(SweepError, match=r"base config 'nowhere.yaml' not found \(tried "):
        load_sweep(path)
    path.write_text("base: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(SweepError, match="not a readable YAML file"):
        load_sweep(path)
    with pytest.raises(SweepError, match="no sweep file"):
        load_sweep(tmp_path / "absent.yaml")
    # a base relative to the sweep file
    (tmp_path / "base.yaml").write_text(SWEEP_BASE.read_text())
    path.write_text("base: base.yaml\ngrid: {loss.t: [1, 2]}\n")
    assert len(load_sweep(path).trial_list) == 2


# ---------------------------------------------------------------------------------------------
# the runner with a stand-in trial (no training): layout, failures, resume, refusal


def test_runner_layout_failures_resume_and_refusal(tmp_path):
    path = write_sweep(tmp_path, grid={"loss.w_align": [1, 13, 2]})
    spec = load_sweep(path)
    out = tmp_path / "out"
    first = run_sweep(spec, out, workers=2, progress=False, trial_fn=instant_trial)
    assert (first.total, first.ran, first.ok, first.failed) == (3, 3, 2, 1)
    rows = read_jsonl(out / "results.jsonl")
    assert [r["loss.w_align"] for r in rows] == [1.0, 13.0, 2.0]  # sweep order
    assert rows[1]["status"] == "failed" and "nan" in rows[1]["error"]
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    meta = read_json(out / "sweep.json")
    assert meta["fingerprint"] == spec.fingerprint() and meta["environment"]["torch"]
    for t in spec.trial_list:
        assert read_json(out / "trials" / t.id / "trial.json")["name"] == t.name
    # a rerun skips every finished trial; --retry-failed reruns the failed one only
    again = run_sweep(spec, out, workers=1, progress=False, trial_fn=instant_trial)
    assert (again.ran, again.skipped, again.failed) == (0, 3, 1)
    retry = run_sweep(spec, out, workers=1, progress=False, trial_fn=instant_trial,
                      retry_failed=True)
    assert (retry.ran, retry.skipped) == (1, 2)
    # another sweep in the same folder is refused, naming what to do
    other = load_sweep(write_sweep(tmp_path, "other.yaml", grid={"loss.w_align": [1, 3]}))
    with pytest.raises(SweepError, match="holds a different sweep .* to start over"):
        run_sweep(other, out, workers=1, progress=False, trial_fn=instant_trial)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    with pytest.raises(SweepError, match="not empty and holds no sweep.json"):
        run_sweep(spec, tmp_path / "junk", workers=1, progress=False, trial_fn=instant_trial)
    with pytest.raises(SweepError, match="backend must be"):
        run_sweep(spec, out, backend="slurm", trial_fn=instant_trial)
    # a second sweep process on the same folder is refused while the first holds it
    from alignuniform.io import RunLock, RunLockedError

    with RunLock(out), pytest.raises(RunLockedError, match="in use by pid"):
        run_sweep(spec, out, workers=1, progress=False, trial_fn=instant_trial)


# ---------------------------------------------------------------------------------------------
# real trials: train + evaluate, a failure, and resume of an interrupted trial


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    # data.subset 10**6 > 200 sequences: that trial fails inside training
    path = write_sweep(tmp, grid={"data.subset": [None, 10**6]},
                       random={"loss.t": {"int": [1, 8]}}, trials=1,
                       evaluate={"n_train": 150, "n_test": 80})
    spec = load_sweep(path)
    out = tmp / "out"
    # interrupted trial: one of two epochs done before the sweep starts
    from alignuniform.train import config_from_dict, train

    spec2 = load_sweep(write_sweep(tmp, "two.yaml", grid={"data.subset": [None]},
                                   set={**TINY_SET, "epochs": 2}))
    trial = spec2.trial_list[0]
    out2 = tmp / "out2"
    config = config_from_dict({**trial.config, "epochs": 1})
    train(config, out2 / "trials" / trial.id, progress=False)
    first_epoch = read_jsonl(out2 / "trials" / trial.id / "epochs.jsonl")[0]
    outcome = run_sweep(spec, out, workers=1, progress=False)
    return {"spec": spec, "out": out, "outcome": outcome, "spec2": spec2, "out2": out2,
            "first_epoch": first_epoch}


def test_real_trials_rows_and_failure(real_sweep):
    outcome, out = real_sweep["outcome"], real_sweep["out"]
    assert (outcome.ok, outcome.failed) == (1, 1)
    ok, bad = read_jsonl(out / "results.jsonl")
    assert ok["status"] == "ok" and bad["status"] == "failed"
    assert "data.subset must be in [1, 200]" in bad["error"]
    trial_dir = out / "trials" / bad["id"]
    assert "Traceback" in (trial_dir / "error.txt").read_text()
    for layer, dim in (("embedding", 2), ("penultimate", 16)):
        assert ok[f"{layer}.dim"] == dim
        assert 0 <= ok[f"{layer}.linear_acc"] <= 1 and 0 <= ok[f"{layer}.knn5_acc"] <= 1
        assert ok[f"{layer}.alignment"] >= 0 and ok[f"{layer}.uniformity"] <= 0
    assert ok["epochs_done"] == 1 and ok["train_s"] > 0 and ok["wall_s"] >= ok["train_s"]
    ev = read_json(out / "trials" / ok["id"] / "eval.json")
    assert ev["n_train"] == 150 and ev["n_test"] == 80
    assert ev["layers"]["embedding"]["linear_acc"] == ok["embedding.linear_acc"]
    # every number the evaluation reports per layer is a column, not only the usual ones
    assert ok["embedding.knn_weighted_acc"] == ev["layers"]["embedding"]["knn_weighted_acc"]
    assert isinstance(ok["collapsed"], bool)


def test_interrupted_trial_resumes_from_its_checkpoint(real_sweep, tmp_path):
    spec2, out2 = real_sweep["spec2"], real_sweep["out2"]
    # the folder holds one trial's run folder but no sweep.json: adopt it by writing the
    # sweep.json an interrupted sweep would have left
    from alignuniform.io import write_json

    write_json(out2 / "sweep.json", spec2.to_dict())
    outcome = run_sweep(spec2, out2, workers=1, progress=False)
    assert (outcome.ran, outcome.ok) == (1, 1)
    trial_dir = out2 / "trials" / spec2.trial_list[0].id
    epochs = read_jsonl(trial_dir / "epochs.jsonl")
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == real_sweep["first_epoch"]  # epoch 1 kept, not retrained
    assert read_jsonl(out2 / "results.jsonl")[0]["epochs_done"] == 2


# ---------------------------------------------------------------------------------------------
# analysis


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dim = (2, 32)[i % 2]
        bound = -1.575 if dim == 2 else -3.8
        align, unif = rng.uniform(0.1, 1.0), rng.uniform(bound, 0)
        acc = float(np.clip(0.8 - 0.3 * align + 0.1 * unif / -bound
                            + 0.03 * rng.normal(), 0, 1))
        w_a, w_u = float(2 ** rng.uniform(-4, 6)), 1.0
        rows.append({"index": i, "id": f"t{i:03d}", "name": f"trial {i}", "status": "ok",
                     "loss.w_align": w_a, "loss.w_uniform": w_u,
                     "loss.w_contrastive": float(i % 3 == 0), "model.feat_dim": dim,
                     "collapsed": unif > 0.2 * bound,
                     "embedding.alignment": align, "embedding.uniformity": unif,
                     "embedding.uniformity_bound": bound, "embedding.dim": dim,
                     "embedding.linear_acc": acc, "embedding.knn5_acc": acc - 0.05,
                     "penultimate.alignment": align, "penultimate.uniformity": unif,
                     "penultimate.uniformity_bound": -3.9, "penultimate.dim": 64,
                     "penultimate.linear_acc": acc, "penultimate.knn5_acc": acc})
    rows.append({"index": n, "id": "bad", "name": "bad", "status": "failed",
                 "error": "FloatingPointError: nan", "collapsed": None})
    return rows


def test_analysis_subsets_intervals_and_strict_json(tmp_path):
    rows = _rows(60)
    analysis = analyze_rows(rows, bootstrap=300, seed=0)
    assert analysis["n_ok"] == 60 and analysis["n_failed"] == 1
    n_collapsed = sum(r["collapsed"] for r in rows[:60])
    assert analysis["n_collapsed"] == n_collapsed
    by = {(r["subset"], r["layer"], r["accuracy"]): r for r in analysis["results"]}
    assert set(s for s, _, _ in by) == {"all", "non_collapsed", "feat_dim=2", "feat_dim=32"}
    main_row = by[("all", "embedding", "linear_acc")]
    assert main_row["n"] == 60 and by[("non_collapsed", "embedding", "linear_acc")]["n"] == \
        60 - n_collapsed
    rho = main_row["alignment"]["spearman"]
    accs = [r["embedding.linear_acc"] for r in rows[:60]]
    aligns = [r["embedding.alignment"] for r in rows[:60]]
    assert rho["value"] == pytest.approx(stats.spearmanr(aligns, accs)[0])
    assert rho["low"] < rho["value"] < rho["high"] and rho["high"] < 0
    comb = main_row["combined"]
    assert comb["spearman"]["value"] > 0.5 and 0 < comb["loo_r2"] < comb["r2"] <= 1
    json.dumps(analysis, allow_nan=False)  # strict JSON
    few = analyze_rows(rows[:3], bootstrap=10)
    assert all(r["alignment"] is None for r in few["results"])


def test_report_readable_with_many_points(tmp_path):
    from alignuniform.io import write_json
    from alignuniform.report.sweep_page import build_sweep_report

    rows = _rows(120)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_json(tmp_path / "sweep.json", {"path": "s.yaml", "base": "b.yaml", "seed": 0,
                                         "grid": {"model.feat_dim": [2, 32]},
                                         "random": {"loss.w_align": {}}, "trial_list": []})
    write_json(tmp_path / "analysis.json",
               {**analyze_rows(rows, bootstrap=50), "n_planned": 121})
    pages = build_sweep_report(tmp_path)
    html = pages["html"].read_text()
    for name in ("fig5_plane.png", "fig6_metrics.png", "fig7_ratio.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert html.count("data:image/png;base64,") == 3 and "Failed trials" in html
    assert "Top 10 trials" in html and "PARTIAL" not in html


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_bad_input_exit_2_and_help_without_torch(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(f"base: {SWEEP_BASE}\ngrid: {{loss.nope: [1]}}\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key 'loss.nope'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written before the error
    assert main(["sweep", "analyze", str(tmp_path / "none")]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    # the sweep machinery (and Ray, matplotlib) load only when the command runs
    code = ("import sys, argparse; from alignuniform.cli import sweep; "
            "sweep.add_parser(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in sys.modules if m.startswith(('alignuniform.sweep', "
            "'alignuniform.report', 'ray', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]"


def test_cli_exit_status_counts_failures(tmp_path, monkeypatch, capsys):
    import alignuniform.sweep.runner as runner

    path = write_sweep(tmp_path, grid={"loss.w_align": [1, 13, 2]})
    real = runner.run_sweep
    monkeypatch.setattr("alignuniform.sweep.run_sweep",
                        lambda *a, **k: real(*a, **{**k, "trial_fn": instant_trial}))
    rc = main(["sweep", str(path), "--out", str(tmp_path / "o"), "--workers", "1",
               "--no-progress", "--bootstrap", "20"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "1 of 3 trials failed" in out and "rho(align)" in out
    assert (tmp_path / "o" / "report.html").is_file()
    assert (tmp_path / "o" / "analysis.json").is_file()


def test_fast_vs_paper_probe_on_a_sweeps_encoders(real_sweep, capsys):
    out = real_sweep["out"]
    assert main(["sweep", "probes", str(out), "--encoders", "3", "--epochs", "2",
                 "--no-progress"]) == 0
    result = read_json(out / "probe_comparison.json")
    assert result["epochs"] == 2 and len(result["encoders"]) == 1  # one trial succeeded
    enc = result["encoders"][0]
    assert 0 <= enc["fast_acc"] <= 1 and 0 <= enc["paper_acc"] <= 1
    assert enc["speedup"] == pytest.approx(enc["paper_seconds"] / enc["fast_seconds"])
    assert "median speed-up" in capsys.readouterr().out


def test_kill_9_of_the_sweep_loses_only_unfinished_epochs(tmp_path):
    """SIGKILL the sweep process mid-trial: its worker dies with it (nothing keeps writing),
    and the rerun continues the trial from its last epoch checkpoint."""
    import os
    import signal
    import time

    n_epochs = 30
    path = write_sweep(tmp_path, grid={"loss.t": [2]},
                       set={**TINY_SET, "epochs": n_epochs,
                            "data.kwargs": {"n_train": 1000, "n_test": 100, "n_val": 10,
                                            "seed": 0}},
                       evaluate={"n_train": 150, "n_test": 80})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "alignuniform", "sweep", str(path), "--out", str(out),
           "--workers", "1", "--threads", "1", "--no-progress", "--no-analysis"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    trial_id = load_sweep(path).trial_list[0].id
    epochs = out / "trials" / trial_id / "epochs.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (epochs.is_file() and epochs.read_text()):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    done = read_jsonl(epochs)
    time.sleep(4)  # a surviving worker would go on writing epochs
    assert read_jsonl(epochs) == done and 1 <= len(done) < n_epochs
    assert subprocess.run(cmd, env=env, cwd=ROOT, timeout=600).returncode == 0
    resumed = read_jsonl(epochs)
    assert [e["epoch"] for e in resumed] == list(range(1, n_epochs + 1))
    assert resumed[:len(done)] == done  # the finished epochs were kept, not retrained
    assert read_jsonl(out / "results.jsonl")[0]["status"] == "ok"


def test_augment_sweeps_are_also_analysed_on_the_full_recipes_positives():
    rows = _rows(20)
    rng = np.random.default_rng(5)
    for r in rows[:20]:  # own-view alignment unrelated to accuracy, full-view alignment tied
        for layer in ("embedding", "penultimate"):
            r[f"{layer}.alignment_full"] = 1.0 - r[f"{layer}.linear_acc"]
            r[f"{layer}.alignment"] = float(rng.uniform())
    analysis = analyze_rows(rows, bootstrap=0)
    by = {(r["subset"], r["layer"], r["accuracy"], r["views"]): r for r in analysis["results"]}
    assert len(by) == len(analysis["results"]) == 2 * len(analyze_rows(_rows(20))["results"])
    full = by[("all", "embedding", "linear_acc", "full")]["alignment"]["spearman"]["value"]
    own = by[("all", "embedding", "linear_acc", "own")]["alignment"]["spearman"]["value"]
    assert full == pytest.approx(-1.0) and abs(own) < 0.6
    table = format_table(analysis)
    assert " full " in table and " own " in table
    # a sweep whose positives never differ has no views column and one block per key
    assert "views" not in format_table(analyze_rows(_rows(20), bootstrap=0))


def test_the_mean_classifier_is_analysed_where_the_rows_have_it():
    rows = _rows(12)
    assert {r["accuracy"] for r in analyze_rows(rows, bootstrap=0)["results"]} == {
        "linear_acc", "knn5_acc"}  # a table from before the mean classifier: no empty blocks
    for r in rows[:12]:
        r["embedding.mean_acc"] = 1.0 - r["embedding.alignment"]
    blocks = [r for r in analyze_rows(rows, bootstrap=0)["results"]
              if r["accuracy"] == "mean_acc" and r["subset"] == "all"]
    assert [b["layer"] for b in blocks] == ["embedding", "penultimate"]
    assert blocks[0]["alignment"]["spearman"]["value"] == pytest.approx(-1.0)
    assert blocks[1]["n"] == 0  # the penultimate layer has no mean_acc in these rows


def test_a_sweep_of_more_than_a_thousand_trials_needs_yes(tmp_path, capsys, monkeypatch):
    import alignuniform.sweep as sweep_module
    from alignuniform.cli import main

    class Started(Exception):
        """Raised instead of running the sweep."""

    def run_sweep(spec, out, **kwargs):
        raise Started(len(spec.trial_list))

    monkeypatch.setattr(sweep_module, "run_sweep", run_sweep)
    path = write_sweep(tmp_path, grid={"loss.t": list(range(1, 41)),
                                       "optim.lr": [0.1 * i for i in range(1, 27)]})
    assert main(["sweep", str(path), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "makes 1,040 trials" in err and "loss.t, optim.lr" in err and "--yes" in err
    assert not (tmp_path / "s").exists()  # refused before any trial folder was made
    with pytest.raises(Started, match="1040"):  # confirmed: the sweep starts
        main(["sweep", str(path), "--out", str(tmp_path / "s"), "--yes"])


def test_spectral_metrics_are_analysed_where_the_rows_have_them():
    rows = _rows(40)
    before = analyze_rows(rows, bootstrap=200, seed=3)
    assert not any("spectral" in r for r in before["results"])  # a table from before them
    table_before = format_table(before)
    assert "rankme" not in table_before
    rng = np.random.default_rng(8)
    for i, r in enumerate(rows[:40]):
        r["embedding.rankme"] = 10 * r["embedding.linear_acc"] + rng.normal(0, 0.01)
        r["embedding.alpha_req"] = None if i % 4 == 0 else float(rng.uniform())  # undefined
        r["embedding.lidar"] = None  # no pairs: never a number
    after = analyze_rows(rows, bootstrap=200, seed=3)
    # every alignment/uniformity number is the one a table without the columns gets
    strip = [{k: v for k, v in r.items() if k != "spectral"} for r in after["results"]]
    assert strip == before["results"]
    assert format_table(after).startswith(table_before + "\n")
    blocks = {(r["subset"], r["layer"], r["accuracy"]): r for r in after["results"]}
    spectral = blocks[("all", "embedding", "linear_acc")]["spectral"]
    assert list(spectral) == ["rankme", "alpha_req"]  # lidar has no number in any row
    accs = [r["embedding.linear_acc"] for r in rows[:40]]
    rho = spectral["rankme"]["spearman"]
    assert rho["value"] == pytest.approx(stats.spearmanr(
        [r["embedding.rankme"] for r in rows[:40]], accs)[0])
    assert rho["low"] <= rho["value"] <= rho["high"] and rho["value"] > 0.9
    kept = [(r["embedding.alpha_req"], r["embedding.linear_acc"]) for r in rows[:40]
            if r["embedding.alpha_req"] is not None]
    assert spectral["alpha_req"]["n"] == len(kept) == 30
    assert spectral["alpha_req"]["kendall"]["value"] == pytest.approx(
        stats.kendalltau(*zip(*kept, strict=True))[0])
    assert {r["layer"] for r in after["results"] if "spectral" in r} == {"embedding"}
    assert "rho(rankme)" in format_table(after) and "tau(alpha_req)" in format_table(after)
    json.dumps(after, allow_nan=False)


def test_trial_rows_carry_the_spectral_columns_of_every_layer():
    from alignuniform.evaluate.spectral_numbers import SPECTRAL_KEYS
    from alignuniform.sweep.trial import SPECTRAL_COLUMNS, row_from_results

    assert SPECTRAL_COLUMNS == SPECTRAL_KEYS
    layer = {"alignment": 0.5, "uniformity": -2.0, "uniformity_bound": -3.9, "linear_acc": 0.4,
             "knn5_acc": 0.3, "dim": 8, "rankme": 7.5, "effective_rank": 6.0,
             "stable_rank": 3.0, "alpha_req": None, "gaussian_w2": 0.2, "lidar": float("nan"),
             "spectral_undefined": {"alpha_req": "collapsed"}}
    row = row_from_results({"layers": {"embedding": layer}})
    assert row["embedding.rankme"] == 7.5 and row["embedding.gaussian_w2"] == 0.2
    assert row["embedding.alpha_req"] is None and row["embedding.lidar"] is None
    assert "embedding.spectral_undefined" not in row
