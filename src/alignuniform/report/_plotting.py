"""What every figure module shares: the Agg backend, the resolution, atomic saving, and
the checks of plotted inputs (a finite number, rows with the keys a figure reads).

Importing this module selects matplotlib's non-interactive Agg backend before pyplot is
imported, so figures render the same on a headless machine as on a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from alignuniform.io import atomic_write  # noqa: E402

__all__ = ["DPI", "check_rows", "finite", "plt", "save_figure"]

DPI = 110


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` atomically (the format from the suffix, PNG by default) and close it."""
    path = Path(path)
    try:
        return atomic_write(path, lambda f: fig.savefig(
            f, format=path.suffix[1:] or "png", dpi=DPI, bbox_inches="tight"))
    finally:
        plt.close(fig)


def finite(value: object, what: str) -> float:
    """``value`` as a float; ``TypeError`` if it is not a number, ``ValueError`` if not finite."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be a number, got {value!r}") from err
    if not np.isfinite(number):
        raise ValueError(f"{what} must be finite, got {number}")
    return number


def check_rows(rows: Sequence[Mapping], keys: set[str], what: str) -> None:
    """Raise ``ValueError`` if ``rows`` is empty, ``KeyError`` if a row lacks one of ``keys``."""
    if not rows:
        raise ValueError(f"{what} needs at least one row")
    for i, row in enumerate(rows):
        missing = keys - set(row)
        if missing:
            raise KeyError(f"{what}: row {i} lacks {sorted(missing)}")
