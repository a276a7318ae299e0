"""Tests for ``benchmarks/gpu_check.py`` (``make gpu-check``) on its CPU path.

The script's comparisons are the same on every device, so ``--device cpu`` tests them here:
it passes on a correct library, a result planted wrong (``--plant``) or a case that differs
from its float64 reference fails and is named in the JSON, and without CUDA the default
invocation says so and exits 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import _gpu_cases, _gpu_runs, gpu_check

ROOT = Path(__file__).resolve().parents[1]


def _strict(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _check(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "gpu_check.json"
    code = gpu_check.main(["--device", "cpu", "--out", str(out), *args])
    return code, _strict(out)


def test_cpu_mode_passes_every_case_against_float64(tmp_path):
    code, report = _check(tmp_path, "--only", "numerics", "bench")
    assert code == 0 and report["ok"] and report["failed"] == []
    records = {r["name"]: r for r in report["checks"]}
    for case in _gpu_cases.CASES:
        for mode in ("float32", "bf16_autocast"):
            record = records[f"numerics.{case.name}.{mode}"]
            assert record["status"] == "pass", record
            assert (record["rtol"], record["atol"]) == gpu_check.TOLERANCES[mode]
            # each number is stated next to its float64 reference
            assert all({"reference", "device"} <= set(v) for k, v in record.items()
                       if isinstance(v, dict))
            assert case.grad == ("grad_max_abs_diff" in record)
    assert records["numerics.coverage"]["status"] == "pass"  # a case for every public name
    assert records["bench.gpu_rows"]["status"] == "pass"
    assert report["device"] == "cpu" and "numerics.align_loss.fp16_autocast" not in records


@pytest.mark.parametrize("name", ["numerics.uniform_loss.float32",
                                  "numerics.feature_argmax_pairs.bf16_autocast",
                                  "numerics.Uniformity.subset", "bench.gpu_rows"])
def test_a_planted_failure_exits_non_zero_and_is_named(tmp_path, name):
    code, report = _check(tmp_path, "--only", "numerics", "bench", "--match", name,
                          "--plant", name)
    assert code == 1 and not report["ok"] and report["failed"] == [name]
    (record,) = report["checks"]
    assert record["status"] == "fail"
    assert record["error"].startswith(("AssertionError", "Mismatch")), record["error"]


def test_a_case_off_its_float64_reference_fails_with_the_numbers(tmp_path, monkeypatch):
    # right in float64 only: the comparison, not the plant, must catch it
    def off(device, x, y):
        return (x * x).sum() * (1.0 if x.dtype == torch.float64 else 1.1)

    case = _gpu_cases.Case("off", "uniform_loss", off, _gpu_cases._views, grad=True)
    monkeypatch.setattr(_gpu_cases, "CASES", [case])
    code, report = _check(tmp_path, "--only", "numerics", "--match", "numerics.off")
    assert code == 1 and report["failed"] == ["numerics.off.float32",
                                              "numerics.off.bf16_autocast"]
    record = report["checks"][0]
    assert "value:" in record["error"] and "gradient" in record["error"]
    assert record["value"]["device"] != record["value"]["reference"]


def test_an_unknown_plant_is_refused(tmp_path):
    code = gpu_check.main(["--device", "cpu", "--only", "bench", "--plant", "bench.typo",
                           "--out", str(tmp_path / "r.json")])
    assert code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here")
def test_without_cuda_the_default_run_says_so_and_exits_0(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CUDA is not available" in proc.stdout and not out.exists()
    # asking for CUDA explicitly is an error, not a silent pass
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cuda",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr


@pytest.mark.slow
def test_kill_and_resume_on_the_cpu_is_bit_identical(tmp_path):
    code, report = _check(tmp_path, "--only", "train", "--match", "train.dense_in_batch")
    (record,) = report["checks"]
    assert code == 0 and record["status"] == "pass", record
    # killed after epoch 2's steps, before its checkpoint; resumed to the end
    assert record["killed_after_step"] == 3 and record["logged_when_killed"] == 6
    assert record["steps"] == 9 and record["amp"] == "bf16"


def test_checkpoints_compare_bit_for_bit_naming_each_difference():
    a = {"model": {"w": torch.ones(3), "b": torch.zeros(2)}, "rng": [torch.arange(4), 7],
         "step": 9}
    same = {"model": {"w": torch.ones(3), "b": torch.zeros(2)}, "rng": [torch.arange(4), 7],
            "step": 9}
    assert list(_gpu_runs.differences(a, same)) == []
    off = {"model": {"w": torch.ones(3).nextafter(torch.tensor(2.0)),
                     "b": torch.zeros(2, dtype=torch.float64)},
           "rng": [torch.arange(4), 8], "extra": 1, "step": 9}
    assert list(_gpu_runs.differences(a, off)) == ["extra (only in one)", "model.b",
                                                     "model.w", "rng.1"]


@pytest.mark.slow
def test_two_gloo_processes_give_the_one_process_losses_and_weights(tmp_path):
    code, report = _check(tmp_path, "--only", "ddp", "--match", "ddp.losses", "ddp.train")
    losses, trained = report["checks"]
    assert code == 0 and losses["status"] == trained["status"] == "pass", report
    assert set(losses) >= {"uniform_loss", "contrastive_loss", "nt_xent_loss"}
    # train under torchrun against one process, 3 epochs of 3 global batches
    assert trained["steps"] == 9 and trained["max_abs_diff"] <= 1e-4
