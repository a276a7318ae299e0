"""Input validation shared by losses and metrics: one clear message per mistake."""

from __future__ import annotations

import math
import numbers

import torch

#: elements checked at a time by :func:`all_finite`
FINITE_BLOCK = 1 << 22


def all_finite(x: torch.Tensor, block: int = FINITE_BLOCK) -> bool:
    """``torch.isfinite(x).all()`` in blocks of about ``block`` elements: ``isfinite`` builds
    ``x.abs()`` and three boolean masks, 1.7x the tensor's size in temporaries (850 MB for
    1M x 128 float32); with the default block they stay under ~30 MB. Tensors of up to
    ``block`` elements (every training batch) take the single call."""
    if x.numel() <= block or x.ndim == 0:
        return bool(torch.isfinite(x).all())
    rows = max(1, block // max(1, x[0].numel()))
    return all(bool(torch.isfinite(x[s : s + rows]).all()) for s in range(0, x.shape[0], rows))


def embeddings(
    x: object, name: str, *, min_rows: int = 1, check_values: bool = True
) -> torch.Tensor:
    """Check that ``x`` is a finite floating (N, d) tensor with at least ``min_rows`` rows.

    Returns ``x`` upcast to float32 when it is float16/bfloat16: the exponentials in the
    losses overflow or lose all precision in half precision (e.g. at tau = 0.05 or t = 8).
    ``check_values=False`` skips the NaN/Inf check, the one check that reads the values
    (a host synchronisation on a GPU), for callers that flag bad rows on the device.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it with {name}.float()"
        )
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (N samples x d dimensions), got shape {tuple(x.shape)}; "
            "flatten the features, e.g. x.flatten(1)"
        )
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {x.shape[0]}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero dimensions (shape {tuple(x.shape)})")
    if check_values and not all_finite(x):
        raise ValueError(f"{name} contains NaN or Inf values")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x


#: Rows with a smaller norm have no direction: ``F.normalize`` (whose ``eps`` this is) would
#: keep them near the origin, and their gradients through the normalisation reach 1e11.
NORM_EPS = 1e-12


def normalisable(x: torch.Tensor, name: str, hint: str) -> None:
    """Refuse rows of ``x`` whose L2 norm is below :data:`NORM_EPS`, naming the first one,
    and rows whose norm overflows ``x``'s dtype (``F.normalize`` would divide them by
    infinity and return a zero row).

    Args:
        x: (N, d) tensor that is about to be L2-normalised row by row.
        name: the argument's name, for the message.
        hint: how the caller can avoid a zero row (appended to the message).
    """
    norm = torch.linalg.vector_norm(x, dim=1)
    for bad, why, fix in (
        (norm <= NORM_EPS, f"is zero (norm <= {NORM_EPS:g}): it has no direction", hint),
        (torch.isinf(norm), f"has a norm beyond the {x.dtype} range", f"pass {name}.double()"),
    ):
        if bool(bad.any()):
            rows = bad.nonzero().flatten()
            more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
            raise ValueError(
                f"row {int(rows[0])} of {name}{more} {why}, so it cannot be L2-normalised; "
                f"{fix}"
            )


def common_dtype(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Cast floating tensors to their promoted dtype, as PyTorch's elementwise ops would.

    Mixing float32 and float64 embeddings then computes in float64, rather than failing
    inside a matrix product.
    """
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(dtype) for t in tensors)


def same_shape(x: torch.Tensor, y: torch.Tensor, names: str = "x and y") -> None:
    if x.shape != y.shape:
        raise ValueError(
            f"{names} must have the same shape (row i of one pairs with row i of the other), "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )


def pairs(x: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`embeddings` for both views of positive pairs, which must have one shape; a
    float32/float64 mix is promoted to float64 (:func:`common_dtype`)."""
    x_, y_ = embeddings(x, "x"), embeddings(y, "y")
    same_shape(x_, y_)
    x_, y_ = common_dtype(x_, y_)
    return x_, y_


def loss_weights(weights: dict[str, float], what: str = "weight") -> dict[str, float]:
    """Check a loss combination's term weights: each ``>= 0`` (NaN refused), at least one
    positive; return them as floats. ``what`` names them in the message (e.g. "dense
    weight")."""
    for name, w in weights.items():
        if not w >= 0:
            raise ValueError(f"{name} must be >= 0, got {w!r}")
    if not any(weights.values()):
        raise ValueError(f"at least one {what} must be positive, got {weights}")
    return {name: float(w) for name, w in weights.items()}


def positive(value: float | torch.Tensor, name: str) -> float:
    """Check that ``value`` is a positive finite real number and return it as a float.

    A 0-d tensor (e.g. ``torch.tensor(2.0)``) is accepted and read as its value; one that
    requires grad is refused, since a float cannot carry its gradient. Every refusal is a
    ``ValueError`` (the one exception type callers catch for bad hyperparameters).
    """
    if isinstance(value, torch.Tensor):
        if value.ndim != 0 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(
                f"{name} must be a real number or a 0-d real tensor, got a tensor of shape "
                f"{tuple(value.shape)} and dtype {value.dtype}"
            )
        if value.requires_grad:
            raise ValueError(
                f"{name} is a tensor that requires grad, but {name} is a fixed hyperparameter "
                f"here (its gradient would be lost); pass {name}.item()"
            )
        value = value.item()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok:
        raise ValueError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or not value > 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)
