"""Lazy name -> "module:attr" registries, so a model or data set is imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def resolve(registry: Mapping[str, str], name: str, kind: str) -> Any:
    """Import and return the object registered under ``name``.

    Args:
        registry: Maps names to ``"package.module:attribute"`` strings.
        name: The registered name to look up.
        kind: What the registry holds (``"model"``, ``"dataset"``...), for error messages.

    Raises:
        ValueError: ``name`` is not registered; the message lists the registered names.
    """
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    module_name, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
