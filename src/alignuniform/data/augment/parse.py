"""Recipe parsing: a config's ``augment`` mapping to components on top of a preset's.

    >>> from alignuniform.data.augment.components import Crop, Flip
    >>> from alignuniform.data.augment.parse import parse_augment
    >>> [c.name for c in parse_augment({"flip": False, "cutout": {"side": 0.25}},
    ...                                base=(Crop(), Flip()))]
    ['crop', 'cutout']
    >>> parse_augment({"base": "none", "crop": {"scale": [0.2, 1.0]}})
    (Crop(scale=(0.2, 1.0), ratio=(0.75, 1.3333333333333333)),)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from alignuniform.data.augment.components import COMPONENTS, Component, in_order, make_component

__all__ = ["parse_augment"]


def parse_augment(augment: Mapping, base: tuple[Component, ...] = ()) -> tuple[Component, ...]:
    """The components of a config's ``augment`` mapping applied on top of ``base``.

    Each entry ``name: {param: value}`` turns component ``name`` on, its parameters taken
    from the mapping, else from ``base``'s component of that name, else the defaults;
    ``name: true`` (or ``{}``) turns it on unchanged; ``name: false`` (or ``null``) turns it
    off. The reserved entry ``base: none`` starts from no component instead of ``base``
    (``base: recipe``, the default), so ``{base: none, crop: {}}`` is crop alone.

    Returns:
        The components in the fixed execution order (``COMPONENTS``).
    """
    if not isinstance(augment, Mapping):
        raise TypeError(f"augment must be a mapping of component name to parameters, got "
                        f"{type(augment).__name__}")
    augment = dict(augment)
    start = augment.pop("base", "recipe")
    if start not in ("recipe", "none"):
        raise ValueError(f"augment.base must be 'recipe' (start from the recipe's components) "
                         f"or 'none' (start from none), got {start!r}")
    current = {c.name: c for c in base} if start == "recipe" else {}
    for name, params in augment.items():
        if name not in COMPONENTS:
            raise ValueError(f"unknown augmentation component {name!r}; valid components: "
                             f"{', '.join(COMPONENTS)} (and 'base: none|recipe')")
        if params is False or params is None:
            current.pop(name, None)
            continue
        if params is True:
            params = {}
        if not isinstance(params, Mapping):
            raise TypeError(f"augment.{name} must be a mapping of parameters, true or false, "
                            f"got {params!r}")
        make_component(name, params)  # unknown parameters name themselves, not the merge
        inherited = asdict(current[name]) if name in current else {}
        current[name] = make_component(name, {**inherited, **params})
    return in_order(current.values())
