"""The shipped recipes: the training configs and sweep specs that come with the package.

The repository's ``configs/*.yaml`` (training configs) and ``sweeps/*.yaml`` (sweep specs)
are the only source. A built wheel carries them as package data under
``alignuniform/_recipes/{configs,sweeps}/`` (copied there at build time by ``setup.py``);
from a source checkout (an editable install, or ``PYTHONPATH=src``) they are read from the
repository itself, so there is never a second copy to drift.

A recipe is named by its file name without ``.yaml``. ``resolve_recipe`` turns a path *or*
a name into a file: an existing file always wins, so ``--config my.yaml`` reads that file,
and ``--config stl10_align_uniform`` (or ``configs/stl10_align_uniform.yaml``
from any folder) finds the shipped one.

(Not to be confused with the two-view *augmentation* recipes of ``alignuniform.data``, a
config's ``data.recipe``.)

Examples:
    >>> from alignuniform.shipped import list_recipes, resolve_recipe
    >>> "stl10_align_uniform" in [r.name for r in list_recipes("configs")]
    True
    >>> resolve_recipe("stl10_align_uniform").name
    'stl10_align_uniform.yaml'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

KINDS = ("configs", "sweeps")
"""The recipe kinds, each a folder of ``*.yaml`` files."""

_PACKAGE_DATA = "_recipes"
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)[.?!](\s|$)")


@dataclass(frozen=True)
class Recipe:
    """One shipped recipe.

    Attributes:
        name: File name without ``.yaml`` (what ``--config NAME`` takes).
        kind: ``"configs"`` or ``"sweeps"``.
        path: Where it lies (in the package, or in the source checkout).
        description: The first sentence of its leading comment.
    """

    name: str
    kind: str
    path: Path
    description: str


def _source_root() -> Path | None:
    """The repository root when this module runs from a source checkout, else ``None``."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        if 'name = "alignuniform"' in pyproject.read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def recipe_dir(kind: str) -> Path | None:
    """The folder holding the shipped recipes of ``kind`` (``None`` when there are none).

    A source checkout's ``configs/`` or ``sweeps/`` comes first (the source itself), then the
    copy packaged in an installed wheel.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown recipe kind {kind!r}; valid: {', '.join(KINDS)}")
    root = _source_root()
    if root is not None and (root / kind).is_dir():
        return root / kind
    packaged = Path(str(resources.files("alignuniform") / _PACKAGE_DATA / kind))
    return packaged if packaged.is_dir() else None


def _description(path: Path) -> str:
    """The first sentence of a YAML file's leading comment (``""`` when it has none).

    The comment's lines are joined up to an empty comment line or an indented one (a
    command example), and cut after the first ".", "?" or "!" that ends a sentence (not the
    one of "et al.", "e.g." or "i.e.").
    """
    lines = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                text = line.strip()
                if not text.startswith("#"):
                    break
                body = text[1:]
                if not body.strip() or body.startswith("  "):
                    break
                lines.append(body.strip())
    except (OSError, UnicodeDecodeError):
        return ""
    joined = " ".join(lines)
    end = _SENTENCE_END.search(joined)
    return joined[: end.start() + 1] if end else joined


def list_recipes(kind: str | None = None) -> list[Recipe]:
    """The shipped recipes of one kind (or of all kinds), sorted by kind then name."""
    found = []
    for k in KINDS if kind is None else (kind,):
        folder = recipe_dir(k)
        if folder is None:
            continue
        for path in sorted(folder.glob("*.yaml")):
            found.append(Recipe(path.stem, k, path, _description(path)))
    return found


def _as_name(text: str) -> tuple[str | None, str]:
    """``"configs/x.yaml"`` -> ``("configs", "x")``; ``"x"`` -> ``(None, "x")``."""
    parts = Path(text).parts
    kind = None
    if len(parts) == 2 and parts[0] in KINDS:
        kind, text = parts
    elif len(parts) != 1:
        return None, ""
    return kind, text[:-5] if text.endswith(".yaml") else text


def find_recipe(name: str, kind: str | None = None) -> Recipe:
    """The shipped recipe called ``name`` (never a local file; see ``resolve_recipe``).

    Args:
        name: ``"NAME"``, ``"NAME.yaml"``, ``"configs/NAME.yaml"`` or ``"sweeps/NAME"``.
        kind: ``"configs"``, ``"sweeps"`` or ``None`` (both; a name shipped as both is an
            error asking for ``configs/NAME`` or ``sweeps/NAME``).

    Raises:
        FileNotFoundError: No such recipe; the message lists the shipped names.
        ValueError: A bare name shipped as both kinds, with ``kind=None``.
    """
    prefix, bare = _as_name(str(name))
    kinds = [prefix] if prefix else (list(KINDS) if kind is None else [kind])
    shipped = [r for r in list_recipes() if r.kind in kinds]
    matches = [r for r in shipped if r.name == bare] if bare else []
    if len(matches) > 1:
        raise ValueError(f"{bare!r} is both a shipped config and a sweep: say configs/{bare} "
                         f"or sweeps/{bare}")
    if not matches:
        what = "config file" if kinds == ["configs"] else "file"
        raise FileNotFoundError(
            f"no {what} {name} and no shipped recipe of that name; shipped: "
            f"{', '.join(r.name for r in shipped) or 'none'} (see 'alignuniform configs')")
    return matches[0]


def resolve_recipe(path_or_name: str | Path, kind: str | None = "configs") -> Path:
    """The file a ``--config`` (or a sweep's ``base:``) argument means.

    Args:
        path_or_name: A path to a YAML file, or the name of a shipped recipe: ``"NAME"``,
            ``"NAME.yaml"`` or ``"configs/NAME.yaml"`` (the form the README uses, so its
            commands work from any folder once the package is installed).
        kind: Where to look for names: ``"configs"`` (the default), ``"sweeps"``, or ``None``
            for both.

    Returns:
        ``path_or_name`` itself when it is an existing file, else the shipped recipe's path.

    Raises:
        FileNotFoundError: Neither a file nor a shipped recipe; the message lists the
            shipped names.
        ValueError: A bare name shipped as both a config and a sweep, with ``kind=None``.
    """
    path = Path(path_or_name)
    if path.is_file():
        return path
    return find_recipe(str(path_or_name), kind).path
