"""Sweep files: a base training config, fixed overrides and a search space, resolved into a
list of trials before anything runs.

A sweep file is YAML, read with ``yaml.safe_load`` and checked field by field::

    base: mnist1d_base.yaml          # a train config, relative to this file or the cwd
    set: {epochs: 12}                # fixed overrides (dotted keys, as `train KEY=VALUE`)
    grid:                            # full product
      model.feat_dim: [2, 32]
      dense:                         # a section: each value sets several of its keys
        - {scheme: geometric, lam: 0.5}
        - {scheme: geometric, lam: 0.0}
    random:                          # drawn `trials` times for every grid point
      loss.w_align: {loguniform: [0.0625, 64]}
      loss.t: {int: [1, 8]}
      loss.alpha: {choice: [1, 2]}
    trials: 12
    seed: 0                          # seeds the draws and training (--seed overrides)
    evaluate: {layers: [embedding, penultimate], protocol: fast, k: 5}
    resources: {cpu: 1, gpu: 0}      # per trial, for the Ray backend
    analysis: {collapse_fraction: 0.2, bootstrap: 1000}

Every trial's config is built (and so validated: unknown keys, wrong types, bad values)
when the file is loaded, so a mistake is reported before the first trial trains. A trial's
id is a hash of its overrides (``seed`` included), so it is the same on every machine and
every rerun. The distributions of ``random:`` and their draws are ``sweep.space``'s; the
sections are typed by ``alignuniform._typed`` (the training config's rules).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from alignuniform import _typed
from alignuniform.sweep.space import SweepError, check_distribution, draw, labels, short

__all__ = ["AnalysisSpec", "EvaluateSpec", "LAYERS", "ResourcesSpec", "SweepError", "grid_keys",
           "SweepSpec", "TOP_KEYS", "Trial", "config_keys", "load_sweep"]

TOP_KEYS = ("base", "set", "grid", "random", "trials", "seed", "evaluate", "resources",
            "analysis")
LAYERS = ("embedding", "penultimate")
_MAX_REDRAWS = 100


@dataclass
class EvaluateSpec:
    """How every trial is evaluated (``alignuniform.evaluate.evaluate_checkpoint``).

    Attributes:
        layers: Which of "embedding" and "penultimate" to evaluate.
        protocol: "fast" (L-BFGS probe on features), "paper" (the paper's SGD probe on
            augmented images) or "both".
        paper_epochs: Epochs of the paper's probe.
        k: Neighbours of the k-NN classifier (5 in the paper).
        n_train, n_test: Seeded subsets of the probe's training and held-out sets (``None``:
            all); the same subsets for every trial.
        seed: Seed of those subsets, of the probe and of the held-out positive pairs.
        alpha, t: Alignment exponent and uniformity scale of the held-out metrics (the paper
            reports alpha = 2, t = 2 whatever the loss used).
        batch_size: Batch size of feature extraction.
        dense: Keyword arguments of
            ``alignuniform.evaluate.dense_checkpoint_eval.evaluate_dense_checkpoint`` (e.g.
            ``{n_train: 300, n_test: 200}``): each trial's dense numbers on held-out scenes
            are added to its row; ``None``: no dense evaluation.
    """

    layers: list[str] = field(default_factory=lambda: list(LAYERS))
    protocol: str = "fast"
    paper_epochs: int = 100
    k: int = 5
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0
    alpha: float = 2.0
    t: float = 2.0
    batch_size: int = 256
    dense: dict | None = None


@dataclass
class ResourcesSpec:
    """Resources of one trial under the Ray backend (Ray's own units: CPUs, GPU fractions)."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class AnalysisSpec:
    """Settings of ``sweep analyze``.

    Attributes:
        collapse_fraction: An encoder counts as collapsed when its held-out uniformity (of
            the embedding) reaches less than this fraction of the way from 0 to the bound
            of its dimension (``uniformity > collapse_fraction * bound``).
        bootstrap: Bootstrap resamples of the correlation intervals.
        top: Rows of the report's table of best trials.
    """

    collapse_fraction: float = 0.2
    bootstrap: int = 1000
    top: int = 10


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: its overrides, the full training config they give, its id."""

    index: int
    id: str
    name: str
    overrides: dict
    config: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SweepSpec:
    """A loaded sweep file and its resolved trials."""

    path: str
    base: str
    set: dict
    grid: dict
    random: dict
    trials: int
    seed: int
    evaluate: EvaluateSpec
    resources: ResourcesSpec
    analysis: AnalysisSpec
    trial_list: list[Trial]
    base_raw: dict = field(default_factory=dict)

    @property
    def varying(self) -> list[str]:
        """The keys that differ between trials (grid, random), in file order; a grid entry
        over a section counts as the keys its values set."""
        return grid_keys(self.grid) + list(self.random)

    def fingerprint(self) -> str:
        """A hash of everything that decides the table: the base config as written, the
        trials' overrides (their ids) and the evaluation; not how it runs (workers,
        backend, resources), nor defaults that a later version of the config schema adds."""
        payload = {"base": self.base_raw, "trials": [t.id for t in self.trial_list],
                   "evaluate": dataclasses.asdict(self.evaluate)}
        return _hash(payload, 16)

    def to_dict(self) -> dict:
        return {
            "path": self.path, "base": self.base, "set": self.set, "grid": self.grid,
            "random": self.random, "trials": self.trials, "seed": self.seed,
            "evaluate": dataclasses.asdict(self.evaluate),
            "resources": dataclasses.asdict(self.resources),
            "analysis": dataclasses.asdict(self.analysis),
            "base_config": self.base_raw, "fingerprint": self.fingerprint(),
            "trial_list": [t.to_dict() for t in self.trial_list],
        }


def _hash(obj: object, n: int) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# ---------------------------------------------------------------------------------------------
# typed sections


_S = typing.TypeVar("_S")


def _section(cls: type[_S], values: object, where: str) -> _S:
    """A typed section of the sweep file (``alignuniform._typed`` rules)."""
    try:
        return _typed.from_mapping(cls, values, where)
    except ValueError as err:
        raise SweepError(str(err)) from err


def _check_evaluate(ev: EvaluateSpec) -> None:
    if ev.dense is not None:
        import inspect

        from alignuniform.evaluate.dense_checkpoint_eval import evaluate_dense_checkpoint

        options = [p for p in inspect.signature(evaluate_dense_checkpoint).parameters
                   if p not in ("path", "device")]
        unknown = sorted(set(map(str, ev.dense)) - set(options))
        if unknown:
            raise SweepError(f"unknown key(s) {', '.join(unknown)} in evaluate.dense; valid "
                             f"keys: {', '.join(options)}")
    if not ev.layers or set(ev.layers) - set(LAYERS):
        raise SweepError(f"evaluate.layers must be among {list(LAYERS)}, got {ev.layers}")
    if ev.protocol not in ("fast", "paper", "both"):
        raise SweepError(f"evaluate.protocol must be fast, paper or both, got {ev.protocol!r}")
    for name in ("paper_epochs", "k", "batch_size", "n_train", "n_test"):
        value = getattr(ev, name)
        if value is not None and value < 1:
            raise SweepError(f"evaluate.{name} must be >= 1, got {value}")


# ---------------------------------------------------------------------------------------------
# keys of the training config


def config_keys() -> list[str]:
    """Every dotted key a sweep may set (``section.kwargs.<name>`` is also accepted)."""
    from alignuniform.train import TrainConfig

    return _typed.dotted_keys(TrainConfig)


def _is_section(key: str, valid: list[str]) -> bool:
    """``key`` names a section of the config (e.g. ``dense``), not one setting."""
    return key not in valid and any(v.startswith(key + ".") for v in valid)


def grid_keys(grid: dict) -> list[str]:
    """The dotted keys a grid sets: its keys, with a section entry (values that are mappings
    of the section's keys) replaced by the keys its values set, in file order."""
    keys: list[str] = []
    for key, values in grid.items():
        subs = ([f"{key}.{sub}" for v in values for sub in v]
                if values and all(isinstance(v, dict) for v in values)
                and _is_section(key, config_keys()) else [key])
        keys += [k for k in dict.fromkeys(subs) if k not in keys]
    return keys


def _grid_settings(key: str, value: object, sections: set[str]) -> dict:
    """The dotted settings of one grid value: ``{key: value}``, or for a section entry
    ``{key.sub: v}`` for each of its items."""
    if key in sections:
        return {f"{key}.{sub}": v for sub, v in value.items()}  # type: ignore[attr-defined]
    return {key: value}


def _check_key(key: object, valid: list[str], where: str) -> str:
    if not isinstance(key, str):
        raise SweepError(f"{where}: keys must be dotted strings, got {key!r}")
    parts = key.split(".")
    ok = key in valid or any(
        len(parts) > len(v.split(".")) and key.startswith(v + ".") and v.endswith("kwargs")
        for v in valid
    )
    if not ok:
        raise SweepError(f"unknown key {key!r} in {where}; valid keys: {', '.join(valid)} "
                         "(and <section>.kwargs.<name>)")
    return key


# ---------------------------------------------------------------------------------------------
# resolving the trials


def _resolve_base(base: object, sweep_path: Path) -> Path:
    if not isinstance(base, str) or not base:
        raise SweepError(f"base must be the path of a training config, got {base!r}")
    tried = [sweep_path.parent / base, Path(base)]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise SweepError(f"base config {base!r} not found (tried {', '.join(map(str, tried))})")


def load_sweep(path: str | Path, *, seed: int | None = None) -> SweepSpec:
    """Read, validate and resolve a sweep file into its trials.

    Args:
        path: The sweep YAML.
        seed: Overrides the file's ``seed`` (which seeds the random draws and, unless the
            sweep sets ``seed`` itself, every trial's training).

    Raises:
        SweepError: The file is missing or malformed, names an unknown key, has an empty
            grid, a ``base`` that does not exist, a value of the wrong type, a config that
            does not validate, or two trials with identical overrides.
    """
    from alignuniform.train import config_from_dict

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"no sweep file {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SweepError(f"{path} is not a readable YAML file: {err}") from err
    if not isinstance(raw, dict):
        raise SweepError(f"{path} must hold a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(map(str, set(raw) - set(TOP_KEYS)))
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {', '.join(unknown)}; valid keys: "
                         f"{', '.join(TOP_KEYS)}")
    if "base" not in raw:
        raise SweepError(f"{path}: base (the training config the trials start from) is missing")
    base_path = _resolve_base(raw["base"], path)
    try:
        base_raw = yaml.safe_load(base_path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SweepError(f"base config {base_path} is not a readable YAML file: {err}") from err
    if not isinstance(base_raw, dict):
        raise SweepError(f"base config {base_path} must hold a mapping of config sections")

    valid = config_keys()
    fixed = raw.get("set") or {}
    grid = raw.get("grid") or {}
    rand = raw.get("random") or {}
    for name, section in (("set", fixed), ("grid", grid), ("random", rand)):
        if not isinstance(section, dict):
            raise SweepError(f"{name} must be a mapping of dotted keys, got {section!r}")
        for key in section:
            if not (name == "grid" and isinstance(key, str) and _is_section(key, valid)):
                _check_key(key, valid, name)
    if "grid" in raw and not grid:
        raise SweepError("grid is empty: give each key a non-empty list of values, or remove it")
    sections = {key for key in grid if _is_section(key, valid)}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"grid.{key} must be a non-empty list of values, got {values!r}")
        if key in sections:
            for value in values:
                if not isinstance(value, dict) or not value:
                    raise SweepError(f"grid.{key} is a config section: each value must be a "
                                     f"non-empty mapping of its keys, got {value!r}")
                for sub in value:
                    _check_key(f"{key}.{sub}", valid, "grid")
    dists = {key: check_distribution(key, spec) for key, spec in rand.items()}
    if not grid and not rand:
        raise SweepError(f"{path} has no search space: give grid: and/or random: (with trials:)")
    for a, b in (("set", "grid"), ("set", "random"), ("grid", "random")):
        both = set(raw.get(a) or {}) & set(raw.get(b) or {})
        if both:
            raise SweepError(f"key(s) {', '.join(sorted(both))} appear in both {a} and {b}")
    trials = raw.get("trials")
    if rand:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise SweepError(f"trials must be an int >= 1 with random:, got {trials!r}")
    elif trials is not None:
        raise SweepError("trials: counts the random draws; it needs a random: section")
    file_seed = raw.get("seed", 0)
    if isinstance(file_seed, bool) or not isinstance(file_seed, int):
        raise SweepError(f"seed must be an int, got {file_seed!r}")
    seed = file_seed if seed is None else seed
    evaluate = _section(EvaluateSpec, raw.get("evaluate"), "evaluate")
    _check_evaluate(evaluate)
    resources = _section(ResourcesSpec, raw.get("resources"), "resources")
    if resources.cpu <= 0 or resources.gpu < 0:
        raise SweepError(f"resources need cpu > 0 and gpu >= 0, got {resources}")
    analysis = _section(AnalysisSpec, raw.get("analysis"), "analysis")
    if not 0 < analysis.collapse_fraction < 1 or analysis.bootstrap < 0 or analysis.top < 1:
        raise SweepError(f"analysis needs 0 < collapse_fraction < 1, bootstrap >= 0 and "
                         f"top >= 1, got {analysis}")

    # the points: grid product x `trials` random draws, seeded
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    names = labels(grid_keys(grid) + list(rand))
    grid_points = [{k: v for key, value in zip(grid, combo, strict=True)
                    for k, v in _grid_settings(key, value, sections).items()}
                   for combo in itertools.product(*grid.values())] or [{}]
    trial_list: list[Trial] = []
    # draws outermost: a sweep stopped part-way has covered every grid point about equally
    for _ in range(trials or 1):
        for gpoint in grid_points:
            for attempt in range(_MAX_REDRAWS):
                point = {**gpoint, **{k: draw(*d, rng) for k, d in dists.items()}}
                overrides = {**fixed, **point}
                overrides.setdefault("seed", seed)
                config = _build(config_from_dict, base_raw, overrides, len(trial_list))
                # canonical values (1 and 1.0 are one float setting) decide identity
                canonical = {k: _typed.get_dotted(config, k) for k in overrides}
                key = _hash(canonical, 64)
                if key not in seen:
                    break
                if not rand or attempt == _MAX_REDRAWS - 1:
                    raise SweepError(
                        f"trials {seen[key]} and {len(trial_list)} have identical overrides "
                        f"{canonical}" + (" (the random space is too small for this many "
                                          "distinct trials)" if rand else ""))
            seen[key] = len(trial_list)
            name = " ".join(f"{names[k]}={short(canonical[k])}" for k in names
                            if k in canonical) or "base"
            trial_list.append(Trial(index=len(trial_list), id=_hash(canonical, 10), name=name,
                                    overrides=canonical, config=config))
    return SweepSpec(path=str(path), base=str(base_path), set=fixed, grid=grid, random=rand,
                     trials=trials or 1, seed=seed, evaluate=evaluate, resources=resources,
                     analysis=analysis, trial_list=trial_list, base_raw=base_raw)


def _build(config_from_dict, base_raw: dict, overrides: dict, index: int) -> dict:
    """The full training config of a trial, validated (its criteria built) as training
    would."""
    raw = copy.deepcopy(base_raw)
    try:
        for key, value in overrides.items():
            _typed.set_dotted(raw, key, value)
        return config_from_dict(raw).to_dict()
    except (TypeError, ValueError) as err:
        raise SweepError(f"trial {index} ({overrides}): {err}") from err
