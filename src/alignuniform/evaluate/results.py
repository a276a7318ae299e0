"""Evaluation results as JSON files."""

from __future__ import annotations

import json
import os
from pathlib import Path


def save_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as indented JSON atomically (tmp file + rename); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def load_results(path: str | Path) -> dict:
    """Read a results JSON written by :func:`save_results`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file at {path}")
    return json.loads(path.read_text())
