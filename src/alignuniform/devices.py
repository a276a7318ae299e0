"""Devices by name: the one default ("auto": CUDA when available) and the one check of a name.

Every command and function that takes a device string goes through :func:`default_device`,
so ``--device cuda`` on a machine without a GPU, ``cuda:3`` on a machine with two, or a typo
is one clear ``ValueError`` before any work, not a torch traceback at the first ``.to()``.

Examples:
    >>> default_device("cpu")
    device(type='cpu')
    >>> default_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'gpu': use auto, cpu, cuda or cuda:N (mps on Apple silicon)
"""

from __future__ import annotations

import torch

__all__ = ["check_device", "default_device"]


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, refused when this machine lacks it.

    Raises:
        ValueError: An unknown device name, CUDA without a CUDA GPU, or a CUDA index beyond
            the devices present; the message says what to use instead.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {str(device)!r}: use auto, cpu, cuda or cuda:N "
                         "(mps on Apple silicon)") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r}: no CUDA GPU is available here "
                "(torch.cuda.is_available() is False); use cpu, or auto to take a GPU when "
                "there is one"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {str(device)!r}: there are {count} CUDA devices "
                             f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available here; use cpu")
    return dev


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` checked (:func:`check_device`); ``None`` or ``"auto"``: CUDA when
    available, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device)
