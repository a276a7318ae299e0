"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict with (at least) ``"model"`` (a state dict) and ``"config"`` (the
training config as a plain dict, whose ``"model"`` entry names the architecture), plus
``"optimizer"``, ``"scheduler"``, ``"rng"``, ``"epoch"`` and ``"step"`` for resuming.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from alignuniform.io import atomic_write
from alignuniform.models import build_model


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (``alignuniform.io.atomic_write``: a temporary
    file in the same folder, fsynced, renamed, the folder fsynced; mode as the umask says).

    An interrupted save (kill -9, full disk) leaves the previous checkpoint intact; the
    temporary file a kill leaves is removed by ``alignuniform.io.remove_stale_temps``.

    Args:
        path: Destination file; its folder is created if needed.
        state: Tensors, numbers, strings, lists, tuples and dicts of them (what
            ``torch.load(weights_only=True)`` accepts back).

    Returns:
        ``path`` as a Path.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is empty, truncated, not a torch file, holds disallowed objects,
            or is not a dict; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise ValueError(
            f"{path} is empty (0 bytes): it was never fully written; delete it and start "
            "the run again (or restore a copy)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (a damaged file fails in many ways inside torch)
        # some torch errors have an empty message: fall back to the exception's type
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated, corrupt, or not saved by "
            f"torch.save of plain tensors/containers): {reason}"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a checkpoint dict")
    return state


def load_encoder(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild the trained encoder of a checkpoint from its stored config.

    Args:
        path: A checkpoint written by ``alignuniform.train`` (or any dict with ``"model"``
            and ``"config"["model"]`` = ``{"name": ..., "feat_dim": ..., "kwargs": {...}}``).
        map_location: Device of the loaded weights.

    Returns:
        ``(model in eval mode, config dict)``.

    Raises:
        ValueError: The checkpoint lacks a model or its config, or the weights do not fit the
            architecture the config names.
    """
    state = load_checkpoint(path, map_location)
    config = state.get("config")
    if "model" not in state or not isinstance(config, dict) or "model" not in config:
        raise ValueError(
            f"{path} has no 'model' weights or no 'config' with a 'model' entry; it was not "
            "written by alignuniform.train"
        )
    spec = config["model"]
    model = build_model(spec["name"], feat_dim=spec["feat_dim"], **spec.get("kwargs", {}))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(
            f"the weights in {path} do not fit model {spec['name']!r} with "
            f"feat_dim={spec['feat_dim']} and kwargs={spec.get('kwargs', {})}: "
            f"{str(err).splitlines()[0]} ..."
        ) from err
    return model.to(map_location).eval(), config
