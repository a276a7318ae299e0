"""The search space of a sweep file: its distributions, the seeded draws, the trial names.

A ``random:`` entry is one of ``{choice: [...]}``, ``{uniform: [lo, hi]}``,
``{loguniform: [lo, hi]}`` or ``{int: [lo, hi]}`` (both ends included);
:func:`check_distribution` checks one, :func:`draw` draws from it with a NumPy generator.
Floats are drawn to 4 significant digits (:func:`round4`), so trial names stay readable
and trial ids do not depend on how a float prints.

Examples:
    >>> import numpy as np
    >>> kind, bounds = check_distribution("loss.t", {"int": [1, 8]})
    >>> 1 <= draw(kind, bounds, np.random.default_rng(0)) <= 8
    True
    >>> labels(["loss.t", "dense.t", "loss.alpha"])
    {'loss.t': 'loss.t', 'dense.t': 'dense.t', 'loss.alpha': 'alpha'}
    >>> short(0.5), short([1, 2]), short("fast")
    ('0.5', '[1,2]', 'fast')
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")


class SweepError(ValueError):
    """A sweep file (or its output folder) that cannot run; the message says why."""


def check_distribution(key: str, spec: object) -> tuple[str, list]:
    """``(kind, argument)`` of the distribution ``spec`` of ``random.<key>``.

    Raises:
        SweepError: Not one of the four kinds, or bounds that are not finite ``lo < hi``
            (``lo > 0`` for loguniform; ints for int).
    """
    where = f"random.{key}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise SweepError(f"{where} must be one of {{choice: [...]}}, {{uniform: [lo, hi]}}, "
                         f"{{loguniform: [lo, hi]}}, {{int: [lo, hi]}}; got {spec!r}")
    kind, arg = next(iter(spec.items()))
    if not isinstance(arg, list) or not arg:
        raise SweepError(f"{where}.{kind} must be a non-empty list, got {arg!r}")
    if kind == "choice":
        return kind, arg
    if len(arg) != 2:
        raise SweepError(f"{where}.{kind} must be [lo, hi], got {arg!r}")
    number = int if kind == "int" else (int, float)
    if not all(isinstance(v, number) and not isinstance(v, bool) for v in arg):
        raise SweepError(f"{where}.{kind} bounds must be {'ints' if kind == 'int' else 'numbers'}"
                         f", got {arg!r}")
    lo, hi = arg
    if not lo < hi or not all(math.isfinite(v) for v in arg):
        raise SweepError(f"{where}.{kind} needs finite lo < hi, got {arg!r}")
    if kind == "loguniform" and lo <= 0:
        raise SweepError(f"{where}.loguniform needs lo > 0, got {arg!r}")
    return kind, arg


def round4(value: float) -> float:
    """4 significant digits: readable names, ids that do not depend on float printing."""
    return float(f"{value:.4g}")


def draw(kind: str, arg: list, rng: np.random.Generator) -> object:
    """One value of a checked distribution (:func:`check_distribution`)."""
    if kind == "choice":
        return copy.deepcopy(arg[int(rng.integers(len(arg)))])
    lo, hi = arg
    if kind == "int":
        return int(rng.integers(lo, hi + 1))
    if kind == "uniform":
        return round4(rng.uniform(lo, hi))
    return round4(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def short(value: object) -> str:
    """A value as it appears in a trial's name."""
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


def labels(varying: list[str]) -> dict[str, str]:
    """Short labels for the varying keys: the leaf name, or more where leaves clash."""
    labels = {}
    for key in varying:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            if sum(k.split(".")[-n:] == parts[-n:] for k in varying) == 1:
                break
        labels[key] = label
    return labels
