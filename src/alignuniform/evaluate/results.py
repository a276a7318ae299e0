"""Evaluation results as JSON files (written and read through :mod:`alignuniform.io`)."""

from __future__ import annotations

from pathlib import Path

from alignuniform import io


def save_results(results: dict, path: str | Path) -> Path:
    """Write ``results`` as indented strict JSON atomically; return the path.

    Raises:
        ValueError: ``results`` holds a NaN or an infinity (strict JSON has neither).
    """
    return io.write_json(path, results, sort_keys=True)


def load_results(path: str | Path) -> dict:
    """Read a results JSON written by :func:`save_results`.

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is not valid JSON (truncated, say) or not a JSON object; the
            message names the file.
    """
    results = io.read_json(path)
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object of results, got "
                         f"{type(results).__name__}")
    return results
