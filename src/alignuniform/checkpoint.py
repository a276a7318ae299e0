"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``,
and the one way back from a checkpoint to its encoder and typed config (:func:`load_encoder`,
used by every evaluation and command that reads a checkpoint).

A checkpoint is a dict with (at least) ``"model"`` (a state dict) and ``"config"`` (the
training config as a plain dict, whose ``"model"`` entry names the architecture), plus
``"optimizer"``, ``"scheduler"``, ``"rng"``, ``"epoch"`` and ``"step"`` for resuming.

Every saved checkpoint also holds ``"checksum"``: the SHA-256 of its contents (every tensor's
dtype, shape and bytes and every other value, in the dict's order). ``load_checkpoint``
recomputes it and refuses a file whose bytes changed after it was written (a flipped bit in an
optimizer buffer would otherwise load and silently degrade a resumed run), then returns the
dict without that key. A checkpoint saved without one (by another tool, or an older
alignuniform) loads unchecked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from alignuniform.devices import default_device
from alignuniform.io import atomic_write
from alignuniform.models import build_model

if TYPE_CHECKING:  # train imports this module: the config module is loaded when first used
    from alignuniform.train.config import TrainConfig


CHECKSUM_KEY = "checksum"
"""The key under which ``save_checkpoint`` stores the payload's SHA-256."""


def _feed(h: Any, obj: object) -> None:
    """Add ``obj`` to the hash ``h``, tagging each value with its type so that, say, the
    list ``[1]`` and the tuple ``(1,)`` or the int ``1`` and the float ``1.0`` differ."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}:".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}:".encode())
        for value in obj:
            _feed(h, value)
    else:
        text = repr(obj).encode()
        h.update(f"{type(obj).__name__}{len(text)}:".encode() + text)


def payload_digest(state: dict) -> str:
    """The SHA-256 (hex) of a checkpoint dict's contents, its ``"checksum"`` entry left out.

    Examples:
        >>> a = payload_digest({"w": torch.zeros(2), "epoch": 1})
        >>> a == payload_digest({"w": torch.zeros(2), "epoch": 1})
        True
        >>> a == payload_digest({"w": torch.tensor([0.0, 1e-30]), "epoch": 1})
        False
    """
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (``alignuniform.io.atomic_write``: a temporary
    file in the same folder, fsynced, renamed, the folder fsynced; mode as the umask says).

    An interrupted save (kill -9, full disk) leaves the previous checkpoint intact; the
    temporary file a kill leaves is removed by ``alignuniform.io.remove_stale_temps``.

    Args:
        path: Destination file; its folder is created if needed.
        state: Tensors, numbers, strings, lists, tuples and dicts of them (what
            ``torch.load(weights_only=True)`` accepts back); the key ``"checksum"`` is
            reserved for the SHA-256 of the rest, which this adds.

    Returns:
        ``path`` as a Path.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    if CHECKSUM_KEY in state:
        raise ValueError(f"the key {CHECKSUM_KEY!r} is reserved for the checkpoint's checksum; "
                         "rename that entry of the state")
    stamped = {**state, CHECKSUM_KEY: payload_digest(state)}
    return atomic_write(path, lambda f: torch.save(stamped, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: The file is empty, truncated, not a torch file, holds disallowed objects,
            is not a dict, or its contents no longer match its checksum; the message names
            the file.
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
    stored = state.pop(CHECKSUM_KEY, None)
    if stored is not None and stored != payload_digest(state):
        raise ValueError(
            f"{path} is corrupt: its contents no longer match the checksum stored when it was "
            "written (the file was damaged on disk or in a copy); restore a copy of it, or "
            "delete it and train again"
        )
    return state


def load_encoder(
    path: str | Path, *, device: str | torch.device | None = None, random_init: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, TrainConfig]:
    """The encoder of a training checkpoint and the run's config, typed.

    The architecture comes from the stored config (``config_from_dict``: sections the
    checkpoint does not store take ``TrainConfig``'s defaults, as in training); the weights
    are checked against it even with ``random_init``, so a damaged checkpoint fails the
    same way whichever encoder is asked for.

    Args:
        path: A checkpoint written by ``alignuniform.train`` (or any dict with ``"model"``
            and ``"config"["model"]`` = ``{"name": ..., "feat_dim": ..., "kwargs": {...}}``).
        device: Where the encoder goes (``devices.default_device``: CUDA when available).
        random_init: Return the architecture as training starts it instead of the trained
            weights: ``build_model(..., seed=seed)``, the architecture's own initialisation
            (SmallAlexNet's N(0, 0.02), not PyTorch's layer defaults); with the run's seed
            these are the run's initial weights.
        seed: Seed of the random initialisation.

    Returns:
        ``(encoder in eval mode on device, TrainConfig)``.

    Raises:
        ValueError: The checkpoint lacks a model or its config, the config is not one
            training accepts, or the weights do not fit the architecture the config names.
    """
    from alignuniform.train.config import config_from_dict

    state = load_checkpoint(path)
    raw = state.get("config")
    if "model" not in state or not isinstance(raw, dict) or "model" not in raw:
        raise ValueError(
            f"{path} has no 'model' weights or no 'config' with a 'model' entry; it was not "
            "written by alignuniform.train"
        )
    try:
        config = config_from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{path} stores a config training does not accept: {err}") from err
    spec = config.model
    model = build_model(spec.name, feat_dim=spec.feat_dim, **spec.kwargs)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise ValueError(
            f"the weights in {path} do not fit model {spec.name!r} with "
            f"feat_dim={spec.feat_dim} and kwargs={spec.kwargs}: "
            f"{str(err).splitlines()[0]} ..."
        ) from err
    if random_init:
        model = build_model(spec.name, feat_dim=spec.feat_dim, seed=seed, **spec.kwargs)
    return model.to(default_device(device)).eval(), config
