"""The Ray Tune backend writes the same folder layout and the same table as the local pool
(CPU, one thread per trial, same seeds): a tiny sweep on a local Ray instance."""

from __future__ import annotations

import pytest

from alignuniform.io import read_json, read_jsonl
from alignuniform.sweep import load_sweep, run_sweep
from tests.helpers import TIMING, write_sweep

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray instance and four trials: minutes on a busy machine


def _table(out) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING}
            for row in read_jsonl(out / "results.jsonl")]


def test_ray_backend_table_equals_local(tmp_path):
    path = write_sweep(tmp_path, grid={"loss.w_align": [1, 4]},
                       evaluate={"n_train": 150, "n_test": 80},
                       resources={"cpu": 1, "gpu": 0})
    spec = load_sweep(path)
    local = run_sweep(spec, tmp_path / "local", workers=1, threads=1, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_sweep(spec, tmp_path / "ray", backend="ray", progress=False)
    finally:
        ray.shutdown()
    assert (local.ok, remote.ok, remote.failed) == (2, 2, 0)
    assert _table(tmp_path / "ray") == _table(tmp_path / "local")
    for trial in spec.trial_list:
        for out in ("local", "ray"):
            folder = tmp_path / out / "trials" / trial.id
            assert (folder / "checkpoint.pt").is_file() and (folder / "eval.json").is_file()
            assert read_json(folder / "trial.json")["name"] == trial.name
    assert read_json(tmp_path / "ray" / "sweep.json")["run"]["backend"] == "ray"
    assert (tmp_path / "ray" / "ray").is_dir()  # Tune's own records, beside the table
