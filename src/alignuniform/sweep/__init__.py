"""Sweeps over the loss space: the paper's central experiment as one call.

- :func:`load_sweep` reads a sweep file (base config, fixed overrides, grid and random
  search space, evaluation, resources) and resolves every trial before anything runs;
- :func:`run_sweep` trains and evaluates the trials (local worker pool, or Ray Tune) into
  one folder with one table, resumably;
- :func:`analyze_sweep` measures how well alignment and uniformity predict accuracy
  (Spearman and Kendall with bootstrap intervals, a fitted ``a·align + b·unif`` with its
  leave-one-out R²), also over non-collapsed encoders only.

Examples:
    >>> from alignuniform.sweep import load_sweep, run_sweep, analyze_sweep
    >>> spec = load_sweep("sweeps/mnist1d_study.yaml")
    >>> outcome = run_sweep(spec, "runs/mnist1d_study", workers=1)  # doctest: +SKIP
    >>> analysis = analyze_sweep("runs/mnist1d_study")  # doctest: +SKIP
"""

from alignuniform.sweep.analysis import analyze_rows, analyze_sweep
from alignuniform.sweep.runner import SweepOutcome, default_workers, run_sweep
from alignuniform.sweep.spec import (
    AnalysisSpec,
    EvaluateSpec,
    ResourcesSpec,
    SweepError,
    SweepSpec,
    Trial,
    config_keys,
    load_sweep,
)
from alignuniform.sweep.trial import is_collapsed, run_trial

__all__ = [
    "AnalysisSpec",
    "EvaluateSpec",
    "ResourcesSpec",
    "SweepError",
    "SweepOutcome",
    "SweepSpec",
    "Trial",
    "analyze_rows",
    "analyze_sweep",
    "config_keys",
    "default_workers",
    "is_collapsed",
    "load_sweep",
    "run_sweep",
    "run_trial",
]
