"""Class folders of images inside a zip file, read in place, decoded once and cached.

The offline CIFAR-10 copy (``train/<class>/<NNNN>.jpg`` in an uncompressed zip) is the main
user. Decoding 50,000 JPEGs takes about 10 s, so the decoded uint8 array is cached as an
``.npz`` keyed by the zip's name, size and modification time: a changed zip is decoded again.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from alignuniform.io import atomic_write, remove_stale_temps

# a cache write takes seconds; a temporary file this old was left by a killed process
_STALE_S = 3600.0

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def default_cache_dir() -> Path:
    """``$ALIGNUNIFORM_CACHE``, else ``$XDG_CACHE_HOME/alignuniform`` (``~/.cache/...``)."""
    if os.environ.get("ALIGNUNIFORM_CACHE"):
        return Path(os.environ["ALIGNUNIFORM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "alignuniform"


def _members(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(member name, class name) of every image; the class is its parent folder."""
    found = []
    for name in zf.namelist():
        path = PurePosixPath(name)
        if path.suffix.lower() in IMAGE_SUFFIXES and len(path.parts) >= 2:
            found.append((name, path.parent.name))
    return sorted(found)


def _checked_zip(zip_path: str | Path) -> Path:
    """``zip_path`` as a Path, refused with a clear error unless it is a zip file."""
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"no such zip file: {zip_path}")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"{zip_path} is not a zip file")
    return zip_path


def zip_classes(zip_path: str | Path) -> list[str]:
    """The sorted class folder names of a zip of images, read from its index (no decoding).

    Raises:
        FileNotFoundError: The zip does not exist.
        ValueError: Not a zip.
    """
    with zipfile.ZipFile(_checked_zip(zip_path)) as zf:
        return sorted({cls for _, cls in _members(zf)})


def decode_zip(
    zip_path: str | Path, *, skip_corrupt: bool = False, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Decode every image of a zip of class folders into one array.

    Args:
        zip_path: Zip whose images sit at ``.../<class>/<file>``; classes are sorted by name.
        skip_corrupt: Skip images that fail to decode instead of raising.
        progress: Show a progress bar.

    Returns:
        ``(images (N, H, W, 3) uint8, labels (N,) int64, classes, skipped member names)``.

    Raises:
        FileNotFoundError: The zip does not exist.
        ValueError: Not a zip, no images, an undecodable image (named; unless
            ``skip_corrupt``), or images of different sizes.
    """
    zip_path = _checked_zip(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        members = _members(zf)
        if not members:
            raise ValueError(
                f"{zip_path} holds no images in class folders (expected .../<class>/<file>.jpg)"
            )
        classes = sorted({cls for _, cls in members})
        class_index = {cls: i for i, cls in enumerate(classes)}
        images: list = []
        labels, skipped = [], []
        for name, cls in tqdm(members, desc=f"decoding {zip_path.name}", disable=not progress):
            try:
                with Image.open(io.BytesIO(zf.read(name))) as img:
                    array = np.asarray(img.convert("RGB"))
            except (OSError, SyntaxError, ValueError, zipfile.BadZipFile) as err:
                if not skip_corrupt:
                    raise ValueError(
                        f"cannot decode image {name!r} in {zip_path}: {err}; replace or remove "
                        "it, or pass skip_corrupt=True to skip unreadable images"
                    ) from err
                skipped.append(name)
                continue
            if images and array.shape != images[0].shape:
                raise ValueError(
                    f"image {name!r} in {zip_path} is {array.shape}, others are "
                    f"{images[0].shape}; a zip data set needs images of one size"
                )
            images.append(array)
            labels.append(class_index[cls])
    if not images:
        raise ValueError(f"no image of {zip_path} could be decoded ({len(skipped)} skipped)")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes, skipped


def load_zip_cached(
    zip_path: str | Path,
    *,
    cache_dir: str | Path | None = None,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """``decode_zip`` through an on-disk cache (written atomically; safe with parallel runs).

    Args:
        zip_path: The zip to read.
        cache_dir: Where the ``.npz`` cache lives; default ``default_cache_dir()``.
        skip_corrupt: As in ``decode_zip`` (part of the cache key).
        progress: Show a progress bar while decoding.

    Returns:
        As ``decode_zip``. A warning reports how many images were skipped.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"no such zip file: {zip_path}")
    stat = zip_path.stat()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = f"{zip_path.stem}-{stat.st_size}-{stat.st_mtime_ns}{'-skip' if skip_corrupt else ''}"
    cache = cache_dir / f"{key}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as f:
                out = (f["images"], f["labels"], list(f["classes"]), list(f["skipped"]))
        except (OSError, ValueError, KeyError):
            out = None  # a damaged cache is rebuilt below
        if out is not None:
            _warn_skipped(zip_path, out[3])
            return out
    images, labels, classes, skipped = decode_zip(
        zip_path, skip_corrupt=skip_corrupt, progress=progress
    )
    remove_stale_temps(cache_dir, older_than=_STALE_S)  # other runs may be writing: only old ones
    atomic_write(cache, lambda f: np.savez(
        f, images=images, labels=labels, classes=np.array(classes, dtype=str),
        skipped=np.array(skipped, dtype=str)))
    _warn_skipped(zip_path, skipped)
    return images, labels, classes, skipped


def _warn_skipped(zip_path: Path, skipped: list[str]) -> None:
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image(s) in {zip_path} (skip_corrupt=True), "
            f"e.g. {skipped[0]!r}",
            stacklevel=3,
        )
