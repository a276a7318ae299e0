"""The whole theory suite: every experiment at the ``quick`` (CI) or ``full`` (report) size.

:func:`run_suite` runs the sections in a fixed order from one seed and returns a
:class:`TheoryRun`; ``alignuniform theory`` is this function plus printing, figures and
``theory.json`` (:meth:`TheoryRun.to_json`, strict JSON).

Random state: one ``numpy.random.Generator`` seeded with ``seed`` is passed from section to
section in :data:`SECTIONS` order (so a section's numbers depend on the sizes of those before
it); the point optimisations and the Arora et al. experiment start from ``seed`` itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alignuniform import _typed
from alignuniform.theory import arora_experiments as A
from alignuniform.theory import wang_isola_experiments as E
from alignuniform.theory.checks import Check, Result

__all__ = ["TheorySettings", "QUICK", "FULL", "SETTINGS", "SECTIONS", "TheoryRun", "run_suite"]


@dataclass(frozen=True)
class TheorySettings:
    """The size of every experiment; the defaults are the full (report) size."""

    sampling: E.SamplingSettings = E.SamplingSettings()
    theorem1: E.Theorem1Settings = E.Theorem1Settings()
    closed_form: E.ClosedFormSettings = E.ClosedFormSettings()
    circle: E.CircleSettings = E.CircleSettings()
    sphere: E.SphereSettings = E.SphereSettings()
    antipodal: E.AntipodalSettings = E.AntipodalSettings()
    estimators: E.EstimatorSettings = E.EstimatorSettings()
    limit_terms: E.LimitTermsSettings = E.LimitTermsSettings()
    arora: A.AroraSettings = A.AroraSettings()

    def __post_init__(self) -> None:
        _typed.check_fields(self)  # every section's types and finite numbers, as in configs


FULL = TheorySettings()
QUICK = TheorySettings(
    sampling=E.SamplingSettings(n=5000),
    theorem1=E.Theorem1Settings(max_log2_m=14, n_samples=1000),
    closed_form=E.ClosedFormSettings(dims=(2, 3, 8, 32, 128), ts=(0.5, 1.0, 2.0, 4.0),
                                     n_pairs=20000),
    circle=E.CircleSettings(steps=200),
    sphere=E.SphereSettings(n_points=(16, 64), steps=150),
    antipodal=E.AntipodalSettings(dims=(2, 3, 16), n=2000),
    estimators=E.EstimatorSettings(batch_sizes=(2, 4, 8, 16, 32, 64, 128, 256), n_batches=300),
    limit_terms=E.LimitTermsSettings(n=2000, bank=4096),
    arora=A.QUICK,
)
SETTINGS = {"quick": QUICK, "full": FULL}

_Runner = Callable[[Any, np.random.Generator, int], Result]

#: Section name -> how to run it from (its settings, the shared generator, the seed), in order.
SECTIONS: dict[str, _Runner] = {
    "sampling": lambda cfg, rng, seed: E.run_sampling(cfg, rng),
    "theorem1": lambda cfg, rng, seed: E.run_theorem1(cfg, rng),
    "closed_form": lambda cfg, rng, seed: E.run_closed_form(cfg, rng),
    "circle": lambda cfg, rng, seed: E.run_circle(cfg, seed),
    "sphere": lambda cfg, rng, seed: E.run_sphere(cfg, seed),
    "antipodal": lambda cfg, rng, seed: E.run_antipodal(cfg, rng),
    "estimators": lambda cfg, rng, seed: E.run_estimators(cfg, rng),
    "limit_terms": lambda cfg, rng, seed: E.run_limit_terms(cfg, rng),
    "arora": lambda cfg, rng, seed: A.run_arora(cfg, seed),
}


@dataclass
class TheoryRun:
    """The results, checks and timings of one :func:`run_suite` call."""

    mode: str
    seed: int
    settings: TheorySettings
    results: dict[str, Result] = field(default_factory=dict)
    checks: dict[str, list[Check]] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> list[tuple[str, Check]]:
        """``(section, check)`` for every check that failed."""
        return [(s, c) for s, cs in self.checks.items() for c in cs if not c.passed]

    def to_json(self) -> dict:
        """Plain data for ``io.write_json``: settings, every result, a flat ``checks`` table."""
        return {
            "mode": self.mode,
            "seed": self.seed,
            "settings": dataclasses.asdict(self.settings),
            "wall_s": self.wall_s,
            **{name: _plain(dataclasses.asdict(r)) for name, r in self.results.items()},  # type: ignore[call-overload]
            "checks": [{"section": s, **dataclasses.asdict(c)}
                       for s, cs in self.checks.items() for c in cs],
        }


def _plain(obj):
    """Arrays and tensors (point sets) as nested lists, recursively."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    return obj


def run_suite(
    settings: TheorySettings | str = "quick",
    seed: int = 0,
    *,
    sections: Sequence[str] | None = None,
    on_section: Callable[[str], None] | None = None,
) -> TheoryRun:
    """Run the theory experiments and their checks.

    Args:
        settings: a :class:`TheorySettings`, or ``"quick"`` / ``"full"``.
        seed: seeds the shared generator and the point optimisations.
        sections: a subset of :data:`SECTIONS` (run in :data:`SECTIONS` order); all by default.
        on_section: called with each section's name once it is done (e.g. a progress bar).

    Raises:
        ValueError: an unknown mode or section name.
    """
    if isinstance(settings, str):
        if settings not in SETTINGS:
            raise ValueError(f"settings must be one of {sorted(SETTINGS)}, got {settings!r}")
        settings = SETTINGS[settings]
    mode = next((k for k, v in SETTINGS.items() if v == settings), "custom")
    unknown = set(sections or ()) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}")
    chosen = [s for s in SECTIONS if sections is None or s in sections]
    run = TheoryRun(mode, seed, settings)
    rng = np.random.default_rng(seed)
    for name in chosen:
        start = time.perf_counter()
        result = SECTIONS[name](getattr(settings, name), rng, seed)
        run.results[name] = result
        run.checks[name] = result.checks()
        run.wall_s[name] = round(time.perf_counter() - start, 2)
        if on_section is not None:
            on_section(name)
    return run
