"""Collapse detection for the callbacks: when the held-out embeddings say the encoder
collapsed, warn and optionally stop training.

Two signals, either one enough:

- **uniformity** (Wang & Isola): ``uniform`` lies between ``uniform_bound`` (the uniform
  sphere, e.g. -3.94 for d = 128, t = 2) and 0 (every row the same point). The guard fires
  when ``uniform`` reaches less than ``uniform_fraction_below`` (default 0.2) of the bound:
  ``uniform > 0.2 * uniform_bound``, the definition of a collapsed encoder in the sweeps
  (their ``analysis.collapse_fraction``, 0.2 by default), so a run the guard stops is one a
  sweep would flag. At t = 2 (bound -3.5 to -4) embeddings whose mean cosine similarity
  exceeds about 0.8 are flagged (Jensen: ``uniform >= -2 t (1 - mean cos)``), and so are two
  antipodal clusters (``log((1 + e^-8) / 2) = -0.69``) from d = 16 on. A circle (-1.57), a
  dimensional collapse, passes it: RankMe (about 2) measures that one.
- **RankMe** (Garrido et al.): the effective number of directions of the embeddings, 1 for
  a point or a line, about d for isotropic ones. The guard fires when it falls below
  ``rankme_below`` (default 2: the embeddings span about one direction). A fraction of d
  would misfire on small held-out sets (RankMe is at most N); pass ``rankme_below=0.05 * d``
  for a stricter guard on large ones.

Examples:
    >>> guard = CollapseGuard(action="stop")
    >>> guard.reason({"uniform": -0.02, "uniform_bound": -3.9, "rankme": 1.0})
    'uniform -0.02 > 0.2 x uniform_bound -3.9; RankMe 1 < 2'
    >>> guard.reason({"uniform": -3.5, "uniform_bound": -3.9, "rankme": 60.0}) is None
    True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["CollapseGuard", "CollapseWarning", "as_guard"]

ACTIONS = ("warn", "stop")


class CollapseWarning(UserWarning):
    """The held-out embeddings collapsed (issued by a callback's :class:`CollapseGuard`)."""


@dataclass(frozen=True)
class CollapseGuard:
    """When to call the held-out embeddings collapsed, and what to do then.

    Args:
        uniform_fraction_below: collapsed when ``uniform / uniform_bound`` is below this
            (uniformity reaches less than this fraction of the uniform sphere's); ``None``
            turns the uniformity test off.
        rankme_below: collapsed when RankMe is below this; ``None`` turns the test off.
        action: ``"warn"``: a :class:`CollapseWarning` (on the main process) and
            ``collapsed = 1`` in the logged values; ``"stop"``: that, and training stops
            (every process, so DDP stops together).
    """

    uniform_fraction_below: float | None = 0.2
    rankme_below: float | None = 2.0
    action: Literal["warn", "stop"] = "warn"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be 'warn' or 'stop', got {self.action!r}")
        if self.uniform_fraction_below is not None and not 0 < self.uniform_fraction_below < 1:
            raise ValueError(
                f"uniform_fraction_below must be in (0, 1), got {self.uniform_fraction_below}")
        if self.rankme_below is not None and not self.rankme_below > 0:
            raise ValueError(f"rankme_below must be positive, got {self.rankme_below}")

    @property
    def needs_rankme(self) -> bool:
        return self.rankme_below is not None

    def reason(self, values: Mapping[str, float]) -> str | None:
        """Why ``values`` (``uniform``, ``uniform_bound``, ``rankme``) say the embeddings
        collapsed, or ``None``. A NaN RankMe (undefined) is not evidence either way."""
        found = []
        frac = self.uniform_fraction_below
        uniform, bound = values["uniform"], values["uniform_bound"]
        if frac is not None and uniform > frac * bound:
            found.append(f"uniform {uniform:.4g} > {frac:g} x uniform_bound {bound:.4g}")
        rankme = values.get("rankme", math.nan)
        if self.rankme_below is not None and rankme < self.rankme_below:
            found.append(f"RankMe {rankme:.4g} < {self.rankme_below:g}")
        return "; ".join(found) or None

    def check(self, values: Mapping[str, float], step: int, *, main_process: bool) -> str | None:
        """:meth:`reason`, with a :class:`CollapseWarning` on the main process when not None."""
        why = self.reason(values)
        if why is not None and main_process:
            then = "stopping training" if self.action == "stop" else "training continues"
            warnings.warn(f"held-out embeddings collapsed at step {step}: {why} ({then})",
                          CollapseWarning, stacklevel=3)
        return why


def as_guard(collapse: CollapseGuard | str | None) -> CollapseGuard | None:
    """A callback's ``collapse=`` argument: a guard, ``"warn"``/``"stop"`` (the default
    thresholds with that action), or ``None`` (no detection)."""
    if collapse is None or isinstance(collapse, CollapseGuard):
        return collapse
    if collapse in ACTIONS:
        return CollapseGuard(action=collapse)  # type: ignore[arg-type]
    raise ValueError(f"collapse must be a CollapseGuard, 'warn', 'stop' or None, got {collapse!r}")
