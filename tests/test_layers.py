"""Imports point one way (docs/development.md, "Where things live"): no module imports a
module of a higher layer, at the top of the file or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "alignuniform"

#: the first dotted part under ``alignuniform`` -> its layer (1: the tensor core)
LAYERS = {
    **dict.fromkeys(["__init__", "losses", "_kernel", "_checks", "_registry", "metrics",
                     "dense", "predictivity", "theory", "distributed", "devices", "io",
                     "_typed", "shipped"], 1),
    **dict.fromkeys(["data", "models", "text"], 2),
    **dict.fromkeys(["train", "evaluate", "sweep", "checkpoint"], 3),
    **dict.fromkeys(["integrations", "report", "demo", "cli", "__main__"], 4),
}


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "alignuniform" and len(parts) > 1 and parts[1] in LAYERS:
                found.append((node.lineno, parts[1]))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_module_has_a_layer():
    assert {_top(p) for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_points_up(path):
    layer = LAYERS[_top(path)]
    up = [(line, name) for line, name in _imports(ast.parse(path.read_text()))
          if LAYERS[name] > layer]
    assert not up, f"{path.relative_to(PACKAGE)} (layer {layer}) imports {up}"
