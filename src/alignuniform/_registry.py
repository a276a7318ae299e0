"""Lazy name -> "module:attr" registries, so a model or data set is imported only when used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
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


def lazy_exports(module: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that imports each of ``exports`` on first use.

    A package whose ``__init__`` imported torch eagerly would make every import of one of
    its light modules (the command line's parser, say) pay for torch.

    Args:
        module: The package's ``__name__``, for error messages.
        exports: Maps public names to ``"package.module:attribute"`` strings, or to
            ``"package.module"`` for a submodule.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        module_name, _, attr = exports[name].partition(":")
        imported = importlib.import_module(module_name)
        return getattr(imported, attr) if attr else imported

    return __getattr__
