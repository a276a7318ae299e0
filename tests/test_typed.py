"""The typed-config helper (alignuniform._typed): coercion, overrides, non-finite values,
unknown keys and nested sections, against hand-written expectations."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from alignuniform import _typed


@dataclass
class Inner:
    lr: float = 0.1
    steps: int = 3
    name: str = "sgd"
    milestones: list[int] = field(default_factory=list)
    dims: tuple[int, ...] = (2, 3)
    limit: float | None = None


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    seed: int = 0
    flag: bool = False
    kwargs: dict = field(default_factory=dict)


def test_numbers_are_coerced_where_the_field_is_a_float():
    got = _typed.from_mapping(Inner, {"lr": "1e-4", "limit": 2, "steps": 5})
    assert got.lr == 1e-4 and isinstance(got.lr, float)
    assert got.limit == 2.0 and isinstance(got.limit, float)
    assert got.steps == 5 and isinstance(got.steps, int)
    assert _typed.from_mapping(Inner, {"dims": [4, 5]}).dims == (4, 5)
    with pytest.raises(ValueError, match="inner.steps must be int, got 1.5"):
        _typed.from_mapping(Inner, {"steps": 1.5}, "inner")
    with pytest.raises(ValueError, match="lr must be float, got 'fast'"):
        _typed.from_mapping(Inner, {"lr": "fast"})
    with pytest.raises(ValueError, match="steps must be int, got True"):  # bool is no int
        _typed.from_mapping(Inner, {"steps": True})
    with pytest.raises(ValueError, match="lr must be float, got False"):
        _typed.from_mapping(Inner, {"lr": False})
    with pytest.raises(ValueError, match=r"milestones must be a list of int.*milestones\[1\]"):
        _typed.from_mapping(Inner, {"milestones": [1, "two"]})
    assert _typed.from_mapping(Inner, {"limit": None}).limit is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "-inf"])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ValueError, match="inner.lr must be a finite number"):
        _typed.from_mapping(Outer, {"inner": {"lr": value}})


def test_unknown_keys_are_named_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown key\(s\) inner.rate, inner.x; valid keys in "
                                         r"inner: lr, steps, name, milestones, dims, limit$"):
        _typed.from_mapping(Outer, {"inner": {"rate": 1, "x": 2}})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) sed; valid keys: inner, "):
        _typed.from_mapping(Outer, {"sed": 1}, noun="config key")
    with pytest.raises(ValueError, match="inner must be a mapping, got 3"):
        _typed.from_mapping(Outer, {"inner": 3})


def test_nested_sections_default_when_missing_or_empty():
    assert _typed.from_mapping(Outer, {}) == Outer()
    assert _typed.from_mapping(Outer, {"inner": None}) == Outer()
    got = _typed.from_mapping(Outer, {"inner": {"name": "adam"}, "kwargs": {"n": 5}})
    assert got == Outer(inner=Inner(name="adam"), kwargs={"n": 5})
    assert _typed.dotted_keys(Outer) == ["inner.lr", "inner.steps", "inner.name",
                                         "inner.milestones", "inner.dims", "inner.limit",
                                         "seed", "flag", "kwargs"]


def test_dotted_overrides_are_yaml_values_set_in_place():
    raw: dict = {"inner": None}  # "inner:" alone in YAML
    _typed.apply_override(raw, "inner.lr=1e-3")
    _typed.apply_override(raw, "inner.milestones=[3, 5]")
    _typed.apply_override(raw, "kwargs.cache.dir=/tmp/x")
    _typed.apply_override(raw, " seed = 4")
    assert raw == {"inner": {"lr": "1e-3", "milestones": [3, 5]},
                   "kwargs": {"cache": {"dir": "/tmp/x"}}, "seed": 4}
    got = _typed.from_mapping(Outer, raw)
    assert got.inner.lr == 1e-3 and got.inner.milestones == [3, 5] and got.seed == 4
    assert _typed.get_dotted(raw, "kwargs.cache.dir") == "/tmp/x"
    with pytest.raises(ValueError, match="must look like section.key=value"):
        _typed.apply_override(raw, "seed")
    with pytest.raises(ValueError, match=r"not a YAML value \(line 1"):
        _typed.apply_override(raw, "inner.milestones=[1")
    with pytest.raises(ValueError, match="seed is not a section"):
        _typed.apply_override(raw, "seed.x=1")
    value = [1, 2]
    _typed.set_dotted(raw, "inner.milestones", value)
    value.append(3)  # a deep copy was stored
    assert raw["inner"]["milestones"] == [1, 2]


def test_settings_built_in_code_follow_the_same_rules():
    from alignuniform.text.settings import SimCSEConfig
    from alignuniform.theory import wang_isola_experiments as E
    from alignuniform.theory.suite import QUICK, TheorySettings

    assert TheorySettings() == TheorySettings() and QUICK.sampling.n == 5000
    with pytest.raises(ValueError, match=r"sampling.n must be int, got 2.5"):
        TheorySettings(sampling=E.SamplingSettings(n=2.5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be a finite number, got inf"):
        SimCSEConfig(lr=math.inf)
    assert SimCSEConfig(tau=1).tau == 1.0 and isinstance(SimCSEConfig(tau=1).tau, float)
