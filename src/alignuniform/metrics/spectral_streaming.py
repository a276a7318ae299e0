"""``torchmetrics.Metric`` classes of the spectral metrics (:mod:`.spectral`): their states
are a count, a row sum and a Gram matrix (LiDAR: the class means' sum and Gram and the
within-class scatter), summed across DDP processes."""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from alignuniform.metrics.spectral import LidarState, SpectralState, _dim

__all__ = ["RankMe", "EffectiveRank", "StableRank", "AlphaReQ", "GaussianW2", "LiDAR"]


def _scalar(value: float, device: torch.device) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64, device=device)


class _Spectral(Metric):
    """Shared by the Metrics that reduce to a :class:`SpectralState`."""

    full_state_update = False
    is_differentiable = False
    _normalize = False

    def __init__(self, dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        dim = _dim(dim)
        f64 = torch.float64
        self.add_state("count", torch.zeros((), dtype=f64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(dim, dtype=f64), dist_reduce_fx="sum")
        self.add_state("gram", torch.zeros(dim, dim, dtype=f64), dist_reduce_fx="sum")

    def _state(self) -> SpectralState:
        count, total, gram = self.count, self.total, self.gram
        assert isinstance(count, torch.Tensor) and isinstance(total, torch.Tensor)
        assert isinstance(gram, torch.Tensor)
        return SpectralState.wrap(count, total, gram, self._normalize)

    def update(self, z: torch.Tensor) -> None:
        """Add a (B, d) batch; no host synchronisation."""
        self._state().update(z)


class RankMe(_Spectral):
    """Streaming :func:`rankme`: ``RankMe(dim, eps=..., center=..., normalize=..., squared=...)``
    (with ``normalize``, zero rows stay zero rather than being refused: ``update`` never
    reads values back to the host).

    Examples:
        >>> import torch
        >>> m = RankMe(8)
        >>> for _ in range(4):
        ...     m.update(torch.randn(1000, 8))
        >>> 7.5 < float(m.compute()) <= 8
        True
    """

    higher_is_better = True

    def __init__(
        self,
        dim: int,
        *,
        eps: float = 1e-7,
        center: bool = False,
        normalize: bool = False,
        squared: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dim, **kwargs)
        self.eps, self.center, self.squared, self._normalize = eps, center, squared, normalize

    def compute(self) -> torch.Tensor:
        value = self._state().rankme(eps=self.eps, center=self.center, squared=self.squared)
        return _scalar(value, self.device)


class EffectiveRank(_Spectral):
    """Streaming :func:`effective_rank`."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return _scalar(self._state().effective_rank(), self.device)


class StableRank(_Spectral):
    """Streaming :func:`stable_rank`."""

    higher_is_better = True

    def compute(self) -> torch.Tensor:
        return _scalar(self._state().stable_rank(), self.device)


class AlphaReQ(_Spectral):
    """Streaming :func:`alpha_req`: ``AlphaReQ(dim, fit_range=..., weighted=...)``."""

    def __init__(
        self,
        dim: int,
        *,
        fit_range: tuple[int, int] | None = None,
        weighted: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dim, **kwargs)
        self.fit_range, self.weighted = fit_range, weighted

    def compute(self) -> torch.Tensor:
        value = self._state().alpha_req(fit_range=self.fit_range, weighted=self.weighted)
        return _scalar(value, self.device)


class GaussianW2(_Spectral):
    """Streaming :func:`gaussian_w2_uniformity` (rows L2-normalised on update; zero rows
    stay zero and shrink the mean, where the function refuses them)."""

    higher_is_better = False
    _normalize = True

    def compute(self) -> torch.Tensor:
        return _scalar(self._state().gaussian_w2(), self.device)


class LiDAR(Metric):
    """Streaming :func:`lidar` over (b, q, d) batches of views: ``LiDAR(dim, delta=, eps=)``."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, dim: int, *, delta: float = 1e-4, eps: float = 1e-8, **kwargs: Any):
        super().__init__(**kwargs)
        dim = _dim(dim)
        self.delta, self.eps = delta, eps
        for name, shape in (
            ("count", ()), ("dof", ()), ("total", (dim,)), ("gram", (dim, dim)),
            ("within", (dim, dim)),
        ):
            self.add_state(name, torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    def _state(self) -> LidarState:
        tensors = (self.count, self.dof, self.total, self.gram, self.within)
        return LidarState.wrap(*tensors)  # type: ignore[arg-type]

    def update(self, views: torch.Tensor) -> None:
        """Add a (b, q, d) batch of views."""
        self._state().update(views)

    def compute(self) -> torch.Tensor:
        value = self._state().lidar(delta=self.delta, eps=self.eps)
        return _scalar(value, self.device)
