"""Input checks shared by the dense pairs, metrics and losses: feature maps, map sizes, crop
boxes and flips, each with an error that names the argument."""

from __future__ import annotations

import torch


def check_map(f: object, name: str) -> torch.Tensor:
    """A finite, non-empty ``(B, C, H, W)`` floating-point map (half precision as float32)."""
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(f).__name__}")
    if not f.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {f.dtype}")
    if f.ndim != 4:
        raise ValueError(
            f"{name} must be a dense map (B, C, H, W), got shape {tuple(f.shape)}; "
            "a global (B, d) embedding is f[:, :, None, None]"
        )
    if min(f.shape) == 0:
        raise ValueError(f"{name} has an empty dimension (shape {tuple(f.shape)})")
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    if f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    return f


def check_size(size: object, name: str) -> tuple[int, int]:
    ok = isinstance(size, (tuple, list, torch.Size)) and len(size) == 2
    if not ok or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):  # type: ignore[attr-defined]
        raise ValueError(f"{name} must be (H, W) with positive ints, got {size!r}")
    return int(size[0]), int(size[1])  # type: ignore[index]


def check_boxes(
    boxes: object, name: str, image_size: tuple[int, int] | torch.Tensor | None
) -> torch.Tensor:
    if not isinstance(boxes, torch.Tensor):
        boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be (B, 4) boxes (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    boxes = boxes.detach().to(torch.float64)
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    bad = ((width <= 0) | (height <= 0)).nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"{name}[{k}] = {boxes[k].tolist()} has zero or negative area; boxes are "
            "(x0, y0, x1, y1) with x1 > x0 and y1 > y0"
        )
    tol = 1e-6
    outside = (boxes[:, 0] < -tol) | (boxes[:, 1] < -tol)
    if image_size is not None:
        size = torch.as_tensor(image_size, dtype=torch.float64, device=boxes.device)
        size = size.expand(boxes.shape[0], 2) if size.ndim == 1 else size
        if size.shape != (boxes.shape[0], 2):
            raise ValueError(f"image_size must be (H, W) or (B, 2), got {tuple(size.shape)}")
        outside |= (boxes[:, 2] > size[:, 1] + tol) | (boxes[:, 3] > size[:, 0] + tol)
    bad = outside.nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"{name}[{k}] = {boxes[k].tolist()} lies outside the image"
            + (f" of size (H, W) = {tuple(image_size)}" if image_size is not None else "")
            + "; crop boxes are in original-image pixels"
        )
    return boxes


def check_flips(flips: object, n: int, name: str) -> torch.Tensor:
    if flips is None:
        return torch.zeros(n, dtype=torch.bool)
    flips = torch.as_tensor(flips).detach().flatten()
    if flips.shape[0] != n:
        raise ValueError(f"{name} must have one entry per box ({n}), got {flips.shape[0]}")
    return flips.bool()
