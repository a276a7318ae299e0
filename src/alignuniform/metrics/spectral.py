"""Label-free spectral metrics of embeddings, exact and streaming from O(d^2) state.

RankMe (Garrido et al., ICML 2023), effective rank (Roy & Vetterli, 2007), stable rank,
alpha-ReQ (Agrawal et al., NeurIPS 2022), LiDAR (Thilak et al., ICLR 2024) and the Gaussian
W2 distance to the uniform sphere (Fang et al., ICLR 2024). Each is a function of (N, d)
embeddings (LiDAR: (n, q, d) views) and a ``torchmetrics.Metric`` whose states are a count,
a row sum and a Gram matrix (LiDAR: the class means' sum and Gram and the within-class
scatter), all summed across DDP processes: 100,000 x 512 embeddings stream in one pass in
d x d memory. The arithmetic is float64 whatever the input dtype. The Metrics take the
dimension up front (``RankMe(512)``): every process then holds states of the same shape,
also one that saw no batch, so DDP can sum them.

Every function needs at least 2 rows and finite values and raises ``ValueError`` otherwise;
an all-zero (rank-0) input raises too, as does anything whose spectrum leaves the metric
undefined (see each function). ``d > N`` is allowed: the spectrum then has at most N
(centred: N - 1) non-zero values and the ranks are bounded by that.

Examples:
    >>> import torch
    >>> from alignuniform.metrics import spectral
    >>> _ = torch.manual_seed(0)
    >>> z = torch.randn(20_000, 16)
    >>> round(spectral.rankme(z), 1)          # isotropic: close to d
    15.9
    >>> round(spectral.rankme(z[:, :3] @ torch.randn(3, 16)), 2) <= 3 + 0.01   # rank 3
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from alignuniform import _checks

__all__ = [
    "rankme",
    "effective_rank",
    "stable_rank",
    "alpha_req",
    "lidar",
    "gaussian_w2_uniformity",
    "SpectralState",
    "LidarState",
]

#: eigenvalues below this fraction of the largest are numerical zeros: float64 eigenvalues
#: of a Gram matrix carry an absolute error of about 1e-16 times the largest one
ALPHA_FLOOR = 1e-10


def _tensor(z: object) -> object:
    return torch.from_numpy(z) if isinstance(z, np.ndarray) else z


def _dim(dim: int) -> int:
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return int(dim)


def _exp_entropy(weights: torch.Tensor, eps: float) -> float:
    """``exp(-sum p log p)`` with ``p = w / sum(w) + eps`` (RankMe's and LiDAR's smoothing)."""
    total = weights.sum()
    if not total > 0:
        raise ValueError("the spectrum is all zeros (rank 0): the embeddings collapsed to a point")
    p = weights / total + eps
    return math.exp(float(-torch.special.xlogy(p, p).sum()))  # 0 log 0 = 0 when eps = 0


class SpectralState:
    """Row count, float64 row sum (d,) and float64 Gram ``Z^T Z`` (d, d) of streamed rows.

    Everything but LiDAR is a function of this state: the singular values of the rows as
    given are ``sqrt(eig(Z^T Z))``; those of the centred rows come from the scatter
    ``Z^T Z - n mu mu^T``. ``update`` adds rows in place (the Metric classes share their state
    tensors with it), ``merge`` adds another state's rows.

    Args:
        dim: d, the embedding dimension.
        normalize: L2-normalise each row before adding it.
        device: where the state lives.
    """

    def __init__(self, dim: int, *, normalize: bool = False, device: Any = None) -> None:
        dim = _dim(dim)
        self.normalize = normalize
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.total = torch.zeros(dim, dtype=torch.float64, device=device)
        self.gram = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @classmethod
    def of(cls, z: object, *, normalize: bool = False) -> SpectralState:
        """The state of the (N >= 2, d) embeddings ``z`` (tensor or array), values checked
        (with ``normalize``, zero rows refused: they have no direction)."""
        x = _checks.embeddings(_tensor(z), "z", min_rows=2)
        if normalize:
            _checks.normalisable(x, "z", "drop such rows, or pass normalize=False")
        state = cls(x.shape[1], normalize=normalize, device=x.device)
        state.update(x)
        return state

    @classmethod
    def wrap(
        cls, count: torch.Tensor, total: torch.Tensor, gram: torch.Tensor, normalize: bool
    ) -> SpectralState:
        """A state over existing tensors (updated in place), e.g. a Metric's states."""
        state = cls.__new__(cls)
        state.normalize, state.count, state.total, state.gram = normalize, count, total, gram
        return state

    def update(self, z: torch.Tensor) -> None:
        """Add the rows of the (B, d) batch ``z``; no host synchronisation (NaN rows poison
        the state, and every metric computed from it then raises)."""
        x = z.detach().to(device=self.gram.device, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.gram.shape[0]:
            raise ValueError(f"expected a (B, {self.gram.shape[0]}) batch, got {tuple(x.shape)}")
        if self.normalize:
            # zero rows stay zero: they carry no direction, and F.normalize's eps keeps them 0
            x = F.normalize(x, dim=1)
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.gram.addmm_(x.T, x)

    def merge(self, other: SpectralState) -> None:
        """Add ``other``'s rows to this state."""
        self.count += other.count.to(self.count.device)
        self.total += other.total.to(self.total.device)
        self.gram += other.gram.to(self.gram.device)

    def _n(self) -> int:
        n = int(self.count)
        if n < 2:
            raise ValueError(f"spectral metrics need at least 2 rows, got {n}")
        if not bool(torch.isfinite(self.gram).all()):
            raise ValueError("the embeddings contained NaN or Inf values")
        return n

    def scatter(self, center: bool) -> torch.Tensor:
        """``Z^T Z``, or with ``center`` the centred scatter ``Z^T Z - n mu mu^T``."""
        n = self._n()
        if not center:
            return self.gram
        return self.gram - torch.outer(self.total, self.total) / n

    def eigenvalues(self, center: bool) -> torch.Tensor:
        """Eigenvalues of :meth:`scatter`, descending, clipped at 0, the ``min(N, d)`` (centred:
        ``min(N - 1, d)``) that can be non-zero."""
        n = self._n()
        values = torch.linalg.eigvalsh(self.scatter(center)).flip(0).clamp_min(0)
        return values[: min(n - 1 if center else n, values.shape[0])]

    def rankme(self, eps: float = 1e-7, center: bool = False, squared: bool = False) -> float:
        """:func:`rankme` of the streamed rows."""
        values = self.eigenvalues(center)
        return _exp_entropy(values if squared else values.sqrt(), eps)

    def effective_rank(self) -> float:
        """:func:`effective_rank` of the streamed rows."""
        return _exp_entropy(self.eigenvalues(center=True), 0.0)

    def stable_rank(self) -> float:
        """:func:`stable_rank` of the streamed rows."""
        values = self.eigenvalues(center=True)
        if not values[0] > 0:
            raise ValueError("the centred embeddings are all zero (rank 0): stable rank undefined")
        return float(values.sum() / values[0])

    def alpha_req(
        self, fit_range: tuple[int, int] | None = None, weighted: bool = False
    ) -> float:
        """:func:`alpha_req` of the streamed rows."""
        values = self.eigenvalues(center=True)
        if not values[0] > 0:
            raise ValueError("the centred embeddings are all zero (rank 0): alpha undefined")
        k_all = values.shape[0]
        if fit_range is None:
            lo, hi = 2, min(k_all, max(4, k_all // 2))
        else:
            lo, hi = (int(k) for k in fit_range)
            if not 1 <= lo < hi <= k_all:
                raise ValueError(
                    f"fit_range must satisfy 1 <= k_min < k_max <= {k_all} (the number of "
                    f"covariance eigenvalues, min(N - 1, d)), got {fit_range}"
                )
        ranks = torch.arange(lo, hi + 1, dtype=torch.float64, device=values.device)
        lam = values[lo - 1 : hi]
        keep = lam > ALPHA_FLOOR * values[0]
        if int(keep.sum()) < 3:
            raise ValueError(
                f"only {int(keep.sum())} covariance eigenvalues in ranks {lo}..{hi} are above "
                f"{ALPHA_FLOOR:g} x the largest: the spectrum collapsed (alpha is unbounded); "
                "alpha-ReQ needs at least 3 to fit a power law"
            )
        x = torch.stack([-ranks[keep].log(), torch.ones_like(ranks[keep])], 1)
        y = lam[keep].log()
        w = 1.0 / ranks[keep] if weighted else torch.ones_like(y)
        coef = torch.linalg.solve(x.T @ (x * w[:, None]), x.T @ (w * y))
        return float(coef[0])

    def gaussian_w2(self) -> float:
        """:func:`gaussian_w2_uniformity` of the streamed rows (needs ``normalize=True``)."""
        if not self.normalize:
            raise ValueError("gaussian_w2 is defined on L2-normalised rows: use normalize=True")
        n = self._n()
        mu = self.total / n
        cov = self.gram / n - torch.outer(mu, mu)
        if not bool((self.gram.diagonal() > 0).any()):
            raise ValueError("all rows are zero: they have no direction on the sphere")
        root_trace = torch.linalg.eigvalsh(cov).clamp_min(0).sqrt().sum()
        m = mu.shape[0]
        squared = mu.dot(mu) + cov.trace() + 1.0 - 2.0 / math.sqrt(m) * root_trace
        return math.sqrt(max(float(squared), 0.0))


def rankme(
    z: object,
    *,
    eps: float = 1e-7,
    center: bool = False,
    normalize: bool = False,
    squared: bool = False,
) -> float:
    """RankMe: ``exp(-sum_k p_k log p_k)`` with ``p_k = s_k / sum(s) + eps``, ``s`` the
    ``min(N, d)`` singular values of the (N, d) embeddings ``z`` as given (Garrido et al.,
    ICML 2023: singular values, not their squares; rows not centred).

    Args:
        z: (N >= 2, d) tensor or array, any float dtype and device.
        eps: the smoothing added to each ``p_k``.
        center: subtract the mean row first (then ``min(N - 1, d)`` values).
        normalize: L2-normalise rows first (before centring).
        squared: use ``s_k^2`` (the covariance eigenvalues) instead of ``s_k``.

    Published variants, as options: the paper's is the default; reptrix's ``get_rankme``
    (the PCA explained-variance ratio) is ``rankme(z, center=True, squared=True)``;
    stable-pretraining's ``RankMe`` callback centres and smooths with ``1e-5``:
    ``rankme(z, center=True, eps=1e-5)``.

    Raises:
        ValueError: fewer than 2 rows, NaN/Inf, or all singular values zero.

    Examples:
        >>> import torch
        >>> round(rankme(torch.eye(4)), 4)    # 4 equal singular values
        4.0
    """
    state = SpectralState.of(z, normalize=normalize)
    return state.rankme(eps=eps, center=center, squared=squared)


def effective_rank(z: object) -> float:
    """Effective rank (Roy & Vetterli, 2007) of the covariance: ``exp`` of the entropy of its
    eigenvalues normalised to sum 1 (no smoothing), i.e. of the squared singular values of the
    centred rows. Equals RankMe's ``center=True, squared=True, eps=0``; between 1 and
    ``min(N - 1, d)``.

    Raises:
        ValueError: fewer than 2 rows, NaN/Inf, or all rows equal (zero covariance).
    """
    return SpectralState.of(z).effective_rank()


def stable_rank(z: object) -> float:
    """Stable rank ``||Z_c||_F^2 / ||Z_c||_2^2`` of the centred rows ``Z_c``: the covariance's
    eigenvalue sum over its largest. Centred, like :func:`effective_rank` and
    :func:`alpha_req`, so the three describe the same matrix and a shared offset of all rows
    (ReLU features have a large one) does not count as one dominant direction.

    Raises:
        ValueError: fewer than 2 rows, NaN/Inf, or all rows equal (zero covariance).
    """
    return SpectralState.of(z).stable_rank()


def alpha_req(
    z: object, *, fit_range: tuple[int, int] | None = None, weighted: bool = False
) -> float:
    """alpha-ReQ (Agrawal et al., NeurIPS 2022): the decay exponent ``alpha`` of the
    covariance eigenspectrum, the least-squares slope of ``log lambda_k = -alpha log k + c``.

    The fit range is ranks ``k_min..k_max`` (1-based, inclusive). By default ``2..K // 2``
    (at least ``2..4``, capped at ``K``), ``K = min(N - 1, d)``: the first eigenvalue is often
    an outlier mode and the lower half of a sample covariance spectrum is bent by finite N
    (Marchenko-Pastur), both of which pull the slope. Within the range, eigenvalues below
    :data:`ALPHA_FLOOR` times the largest are numerical zeros and left out. A flat spectrum
    gives about 0; larger alpha means faster decay (towards collapse).

    Args:
        z: (N >= 2, d) tensor or array.
        fit_range: ``(k_min, k_max)`` with ``1 <= k_min < k_max <= K``.
        weighted: weight rank k by ``1/k``. reptrix's ``get_alpha`` fits that way over
            ``np.arange(10, 100)`` (0-based indices, ranks 11..100) of the explained-variance
            ratio: ``alpha_req(z, fit_range=(11, 100), weighted=True)`` is its value.

    Raises:
        ValueError: fewer than 2 rows, NaN/Inf, a bad ``fit_range``, or fewer than 3
            eigenvalues above the floor in the range (a collapsed spectrum: alpha unbounded).
    """
    return SpectralState.of(z).alpha_req(fit_range=fit_range, weighted=weighted)


def gaussian_w2_uniformity(z: object) -> float:
    """Fang et al. (ICLR 2024)'s uniformity: the 2-Wasserstein distance between the Gaussian
    ``N(mu, Sigma)`` fitted to the L2-normalised rows and ``N(0, I/m)``, the Gaussian limit
    of the uniform distribution on the sphere in m dimensions:
    ``sqrt(||mu||^2 + 1 + tr(Sigma) - (2 / sqrt(m)) tr(Sigma^(1/2)))``.

    Lower is more uniform: 0 for the uniform sphere's limit, ``sqrt(2)`` for rows that all
    point one way (some implementations report ``-W2``, higher better; this is W2).
    ``Sigma`` is the covariance with 1/N, so ``||mu||^2 + tr(Sigma) = 1`` exactly.

    Raises:
        ValueError: fewer than 2 rows, NaN/Inf, or a zero row (no direction).
    """
    return SpectralState.of(z, normalize=True).gaussian_w2()


class LidarState:
    """LiDAR's O(d^2) state: sample count, within-class degrees of freedom ``sum(q - 1)``, the
    class means' sum (d,) and Gram (d, d), and the within-class scatter (d, d), all float64.

    Args:
        dim: d.
        device: where the state lives.
    """

    def __init__(self, dim: int, *, device: Any = None) -> None:
        dim = _dim(dim)
        kw: dict[str, Any] = {"dtype": torch.float64, "device": device}
        self.count = torch.zeros((), **kw)
        self.dof = torch.zeros((), **kw)
        self.total = torch.zeros(dim, **kw)
        self.gram = torch.zeros(dim, dim, **kw)
        self.within = torch.zeros(dim, dim, **kw)

    @classmethod
    def wrap(cls, *tensors: torch.Tensor) -> LidarState:
        """A state over ``(count, dof, total, gram, within)`` tensors (updated in place)."""
        state = cls.__new__(cls)
        state.count, state.dof, state.total, state.gram, state.within = tensors
        return state

    def update(self, views: torch.Tensor) -> None:
        """Add the (b, q, d) views of b samples, q >= 2 each."""
        x = views.detach().to(device=self.gram.device, dtype=torch.float64)
        if x.ndim != 3 or x.shape[2] != self.gram.shape[0]:
            raise ValueError(
                f"views must be (n, q, {self.gram.shape[0]}), got shape {tuple(x.shape)}"
            )
        if x.shape[1] < 2:
            raise ValueError(f"LiDAR needs q >= 2 views per sample, got q = {x.shape[1]}")
        means = x.mean(1)
        centred = (x - means[:, None]).reshape(-1, x.shape[2])
        self.count += x.shape[0]
        self.dof += x.shape[0] * (x.shape[1] - 1)
        self.total += means.sum(0)
        self.gram.addmm_(means.T, means)
        self.within.addmm_(centred.T, centred)

    def merge(self, other: LidarState) -> None:
        """Add ``other``'s samples to this state."""
        for mine, theirs in zip(self._tensors(), other._tensors(), strict=True):
            mine += theirs.to(mine.device)

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.count, self.dof, self.total, self.gram, self.within

    def matrix(self, delta: float) -> torch.Tensor:
        """The LDA matrix ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2``, ``Sigma_w`` with ``+ delta I``."""
        n = int(self.count)
        if n < 2:
            raise ValueError(f"LiDAR needs at least 2 samples, got {n}")
        if not all(bool(torch.isfinite(t).all()) for t in (self.gram, self.within)):
            raise ValueError("the views contained NaN or Inf values")
        between = (self.gram - torch.outer(self.total, self.total) / n) / (n - 1)
        # relative to the means' second moment: cancellation leaves ~1e-16 of it when equal
        if not between.trace() > 1e-12 * self.gram.trace() / n:
            raise ValueError(
                "the between-class scatter is zero: every sample's views have the same mean"
            )
        eye = torch.eye(between.shape[0], dtype=torch.float64, device=between.device)
        w, u = torch.linalg.eigh(self.within / self.dof + delta * eye)
        root_inv = (u * w.rsqrt()) @ u.T
        return root_inv @ between @ root_inv

    def lidar(self, delta: float = 1e-4, eps: float = 1e-8) -> float:
        """:func:`lidar` of the streamed views."""
        if not delta > 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        values = torch.linalg.eigvalsh(self.matrix(delta)).clamp_min(0)
        return _exp_entropy(values, eps)


def lidar(views: object, *, delta: float = 1e-4, eps: float = 1e-8) -> float:
    """LiDAR (Thilak et al., ICLR 2024): the smoothed effective rank of the LDA matrix
    ``Sigma_w^-1/2 Sigma_b Sigma_w^-1/2``, each sample's q views one surrogate class:
    ``exp(-sum p log p)``, ``p = lambda / sum(lambda) + eps`` over all d eigenvalues.

    ``Sigma_b = 1/(n-1) sum_i (m_i - m)(m_i - m)^T`` over the class means ``m_i`` (grand mean
    ``m``) and ``Sigma_w = 1/(n(q-1)) sum_ij (z_ij - m_i)(z_ij - m_i)^T + delta I``: the
    unbiased estimates, stable-pretraining's normalisation and defaults. reptrix's
    ``get_lidar`` uses the plain sums, ``sum_i sum_j / n`` for ``Sigma_w`` and ``delta=1e-6``,
    and takes the PCA explained-variance ratio of the LDA matrix's rows rather than its
    eigenvalues, so its values differ. Without ``delta`` the value is invariant under any
    invertible linear map of the embeddings; with ``n(q-1) < d`` ``Sigma_w`` is singular and
    ``delta`` sets the scale.

    Args:
        views: (n >= 2, q >= 2, d) tensor or array.
        delta: ridge on ``Sigma_w``, > 0.
        eps: the smoothing added to each ``p``.

    Raises:
        ValueError: not 3-D, q < 2, n < 2, NaN/Inf, or all class means equal.
    """
    v = _tensor(views)
    if not isinstance(v, torch.Tensor) or v.ndim != 3:
        raise ValueError("views must be an (n samples, q views, d) tensor or array")
    _checks.embeddings(v.reshape(-1, v.shape[-1]), "views")
    state = LidarState(v.shape[2], device=v.device)
    state.update(v)
    return state.lidar(delta=delta, eps=eps)
