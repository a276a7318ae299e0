"""The bookkeeping of ``benchmarks.gpu_check``: each check's outcome as a JSON record."""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

Record = dict[str, Any]


class Checker:
    """Runs checks, records each outcome, and perturbs the planted one."""

    def __init__(self, device: torch.device, plant: str | None = None,
                 match: list[str] | None = None) -> None:
        self.device, self.plant, self.match = device, plant, match
        self.records: list[Record] = []

    def planted(self, name: str) -> bool:
        return self.plant == name

    def run(self, name: str, fn: Callable[[], Record | None]) -> None:
        """Record ``fn()``'s details as a pass, its AssertionError or exception as a fail,
        and a ``Skip`` as a skip; not run unless its name is one of ``match`` or begins
        with one and a dot."""
        if self.match and not any(name == m or name.startswith(m + ".") for m in self.match):
            return
        start = time.perf_counter()
        try:
            record = {"name": name, "status": "pass", **(fn() or {})}
        except Skip as skip:
            record = {"name": name, "status": "skip", "reason": str(skip)}
        except Mismatch as err:
            record = {"name": name, "status": "fail", "error": f"Mismatch: {err}",
                      **err.details}
        except Exception as err:  # noqa: BLE001 (any error is this check's failure)
            record = {"name": name, "status": "fail", "error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc(limit=-4)}
        record["seconds"] = round(time.perf_counter() - start, 3)
        print(f"{record['status']:4}  {name}  "
              + (record.get("error") or record.get("reason") or ""), flush=True)
        self.records.append(record)


class Skip(Exception):
    """A check that cannot run here, with the reason."""


class Mismatch(AssertionError):
    """Device results off their references; ``details`` holds both, for the report."""

    def __init__(self, message: str, details: Record) -> None:
        super().__init__(message)
        self.details = details


def strict_json(value: Any) -> Any:
    """``value`` with each NaN or infinity as its name: the report is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def close(got: float | None, want: float | None, rtol: float, atol: float) -> bool:
    if got is None or want is None:
        return got is want
    return math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)
