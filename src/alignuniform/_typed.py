"""Typed settings from plain mappings: one set of rules for every config file of the package.

Training configs, sweep files, the SimCSE settings and the theory settings are dataclasses
(sections, possibly nested) filled from YAML or the command line. :func:`from_mapping`
builds one from a mapping and checks every value against its field's type hint:

- an int where the field is a float becomes a float, and so does a string that reads as a
  number (YAML 1.1 reads ``1e-4`` as the string ``"1e-4"``);
- a float must be finite (``.nan`` and ``.inf`` are refused);
- a bool is not an int or a float, though Python says it is;
- list and tuple fields check their items (``list[int]``, ``tuple[float, ...]``);
- a nested dataclass field is a nested mapping (missing or empty: its defaults);
- an unknown key is an error that lists the valid keys.

:func:`apply_override` applies a ``section.key=value`` override (the value read as YAML) to
the raw mapping before it is checked; :func:`check_fields` checks a dataclass instance
built in code the same way; :func:`set_dotted` and :func:`get_dotted` address a
nested mapping by a dotted key, :func:`dotted_keys` lists a dataclass's leaf keys. Every
error is a ``ValueError`` whose message names the dotted key.

Examples:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class Optim:
    ...     lr: float = 0.1
    ...     milestones: list[int] = field(default_factory=list)
    >>> raw = {"lr": "1e-4"}
    >>> apply_override(raw, "milestones=[3, 5]")
    >>> from_mapping(Optim, raw)
    Optim(lr=0.0001, milestones=[3, 5])
    >>> from_mapping(Optim, {"lr": float("nan")}, "optim")
    Traceback (most recent call last):
    ...
    ValueError: optim.lr must be a finite number, got nan
    >>> from_mapping(Optim, {"rate": 1}, "optim")
    Traceback (most recent call last):
    ...
    ValueError: unknown key(s) optim.rate; valid keys in optim: lr, milestones
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

import yaml

_T = TypeVar("_T")


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", str(hint))


def check_value(value: object, hint: object, where: str) -> Any:
    """``value`` checked (and coerced) against the type hint ``hint``; ``where`` names it.

    Raises:
        ValueError: The value does not fit the hint (the message names ``where``).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)  # type: ignore[arg-type]
    if hint is Any:
        return value
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" as a string
            value = float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    expected = origin or hint
    if expected is tuple and isinstance(value, list):
        value = tuple(value)
    if (not isinstance(value, expected)  # type: ignore[arg-type]
            or (expected in (int, float) and isinstance(value, bool))):
        raise ValueError(f"{where} must be {_type_name(expected)}, got {value!r}")
    if expected is float and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if expected in (list, tuple) and args:
        item = args[0]
        try:
            items = [check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        except ValueError as err:
            raise ValueError(f"{where} must be a {_type_name(expected)} of "
                             f"{_type_name(item)}, got {value!r} ({err})") from err
        return expected(items)
    return value


def from_mapping(cls: type[_T], values: object, where: str = "", *,
                 noun: str = "key") -> _T:
    """An instance of the dataclass ``cls`` from a mapping, every value checked.

    Args:
        cls: A dataclass; fields that are dataclasses are nested sections.
        values: The mapping (``None``: the defaults).
        where: The dotted key of ``values`` in the whole ("" at the top), for messages.
        noun: What the messages call a key (e.g. "config key").

    Raises:
        ValueError: ``values`` is not a mapping, has a key ``cls`` lacks (the message lists
            the valid ones) or a value that does not fit its field.
    """
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'the config'} must be a mapping, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    prefix = f"{where}." if where else ""
    unknown = sorted(set(map(str, values)) - set(names))
    if unknown:
        raise ValueError(
            f"unknown {noun}(s) {', '.join(prefix + k for k in unknown)}; valid keys"
            f"{' in ' + where if where else ''}: {', '.join(names)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = from_mapping(hints[name], value, prefix + name, noun=noun)
        else:
            kwargs[name] = check_value(value, hints[name], prefix + name)
    return cls(**kwargs)


def check_fields(obj: object, where: str = "") -> None:
    """Check every field of the dataclass instance ``obj`` against its type hint, coercing
    in place as :func:`check_value` does (for ``__post_init__``: settings built in code or
    from command-line options follow the rules of settings read from files).

    Raises:
        ValueError: A field whose value does not fit its hint (the message names it).
    """
    prefix = f"{where}." if where else ""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value, hint = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint) and isinstance(value, hint):  # type: ignore[arg-type]
            check_fields(value, prefix + f.name)
            continue
        object.__setattr__(obj, f.name, check_value(value, hint, prefix + f.name))


def dotted_keys(cls: type) -> list[str]:
    """Every leaf key of the dataclass ``cls``, dotted through its nested sections."""
    keys, hints = [], typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += [f"{f.name}.{k}" for k in dotted_keys(hints[f.name])]
        else:
            keys.append(f.name)
    return keys


def set_dotted(raw: dict, key: str, value: object) -> None:
    """``raw[a][b][c] = value`` for ``key = "a.b.c"`` (a deep copy), creating the sections
    that are missing or empty (``None``, as YAML reads ``section:`` alone).

    Raises:
        ValueError: A part of ``key`` holds a value that is not a section.
    """
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ValueError(f"cannot set {key}: {part} is not a section")
        node = child
    node[leaf] = copy.deepcopy(value)


def get_dotted(raw: dict, key: str) -> object:
    """``raw[a][b][c]`` for ``key = "a.b.c"`` (``KeyError`` when a part is missing)."""
    node: object = raw
    for part in key.split("."):
        node = node[part]  # type: ignore[index]
    return node


def yaml_error(err: yaml.YAMLError) -> str:
    """One line from a YAML error: where, and what (its str() spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if "python/" in problem:
        problem += " (tags that build Python objects are refused: write plain values)"
    return where + problem


def apply_override(raw: dict, override: str) -> None:
    """Apply ``section.key=value`` to ``raw``, the value read with ``yaml.safe_load``.

    Raises:
        ValueError: ``override`` has no ``=`` or no key, a part of the key is not a
            section, or the value is not YAML.
    """
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {override!r} must look like section.key=value")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"override {override!r}: not a YAML value ({yaml_error(err)})") from err
    try:
        set_dotted(raw, key.strip(), value)
    except ValueError as err:
        raise ValueError(f"override {override!r}: {err}") from err
