"""Pass/fail checks: what every experiment of the theory suite reports.

An experiment returns a typed result (a frozen dataclass of its measurements) whose
``checks()`` derives the pass/fail verdicts from those measurements alone. Keeping the
verdict a pure function of the stored numbers is what lets a test hand a check a broken
input (``dataclasses.replace(result, limit=wrong)``) and see it fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Check", "Result", "Z_CHECK"]

#: Standard errors allowed between a Monte-Carlo estimate and the value it must equal (or
#: the wrong side of an inequality it must satisfy): a 6e-5 two-sided false-alarm rate, so a
#: check with a fixed seed fails because the claim is off, not because of the draw.
Z_CHECK = 4.0


@dataclass(frozen=True)
class Check:
    """One verdict: ``name`` states the claim, ``detail`` the numbers behind the verdict."""

    name: str
    passed: bool
    detail: str


class Result(Protocol):
    """What an experiment returns: measurements plus the checks they pass or fail."""

    def checks(self) -> list[Check]: ...
