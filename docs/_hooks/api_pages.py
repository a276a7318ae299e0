"""MkDocs hook: one API reference page per public module, found by walking src/alignuniform.

Nothing to list by hand: a new module (``sweep/``, ``integrations/``, ``dense.py`` ...) gets
its page, ``::: alignuniform.<module>`` rendered by mkdocstrings from its docstrings, and its
place under "API reference" in the navigation at the next build. Private modules (a leading
underscore) and the CLI's subcommand modules (documented in the user guide) are left out.
Strict builds (``make docs``) fail on a broken reference or a docstring mkdocstrings cannot
read.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "alignuniform"
SKIP = ("alignuniform.cli.", "alignuniform.__main__")


def public_modules() -> list[str]:
    """Dotted names of the public modules and packages, parents before children."""
    names = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if any(p.startswith("_") for p in parts):
            continue
        name = ".".join(parts)
        if not name.startswith(SKIP):
            names.append(name)
    return sorted(names, key=lambda n: n.split("."))


def _page(name: str) -> str:
    return f"reference/{name}.md"


def _nav(names: list[str]) -> list:
    """Nested navigation at every depth: a package's page first, then its modules.

    ``names`` come parents first (:func:`public_modules`); a module whose parent has no page
    (it is private) goes at the top level.
    """
    tree: list = []
    entries: dict[str, dict] = {}  # name -> its entry {name: page or [children]}
    for name in names:
        entry = {name: _page(name)}
        parent = entries.get(name.rsplit(".", 1)[0]) if name.count(".") > 1 else None
        if parent is None:
            tree.append(entry)
        else:
            key = next(iter(parent))
            if isinstance(parent[key], str):
                parent[key] = [{key: parent[key]}]
            parent[key].append(entry)
        entries[name] = entry
    return tree


def on_config(config):
    names = public_modules()
    for i, entry in enumerate(config["nav"]):
        if isinstance(entry, dict) and "API reference" in entry:
            config["nav"][i] = {"API reference": [{"Overview": "reference/index.md"},
                                                  *_nav(names)]}
    return config


def on_files(files, config):
    for name in public_modules():
        text = f"# `{name}`\n\n::: {name}\n"
        files.append(File.generated(config, _page(name), content=text))
    return files
