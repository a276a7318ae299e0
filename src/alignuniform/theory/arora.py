"""Arora et al.'s latent classes, made executable.

Arora, Khandeparkar, Khodak, Plevrakis & Saunshi, "A Theoretical Analysis of Contrastive
Unsupervised Representation Learning", ICML 2019 (arXiv 1902.09229).

**Setting** (their Section 2). Latent classes ``c`` have a distribution ``rho`` and each class
a distribution ``D_c`` over inputs. A positive pair is ``c ~ rho``, ``x, x+ ~ D_c``
independently; each of ``k`` negatives is ``c_i ~ rho``, ``x_i- ~ D_{c_i}``. For a
representation ``f`` the unsupervised loss is

    L_un(f) = E[ l( (f(x)^T (f(x+) - f(x_i-)))_{i=1..k} ) ]

for a loss ``l`` convex and non-increasing in each argument. Here (their examples):
hinge ``l(v) = max(0, 1 + max_i(-v_i))`` and logistic ``l(v) = log2(1 + sum_i e^{-v_i})``;
for ``k = 1`` these are ``max(0, 1 - v)`` and ``log2(1 + e^{-v})``, with ``l(0) = 1``.
(The natural-log logistic differs by the factor ``ln 2``; every statement below is
unchanged by a positive factor.)

**Class collision.** ``tau_k = P(c+ in {c_1, ..., c_k}) = 1 - sum_c rho_c (1 - rho_c)^k``;
``tau = tau_1 = sum_c rho_c^2``. By the law of total expectation

    L_un = (1 - tau_k) L_un^!= + tau_k L_un^=,

with ``L_un^!=`` the loss conditioned on ``c+`` not among the negatives' classes and
``L_un^=`` conditioned on a collision.

**Mean classifier.** ``mu_c = E_{x ~ D_c} f(x)``; for the classes ``(c+, c_1..c_k)`` it
scores ``x ~ D_{c+}`` with ``l((f(x)^T (mu_{c+} - mu_{c_i}))_i)``. ``L_sup^mu(f)`` here is
the average of that loss over class tuples drawn like the negatives, conditioned on ``c+``
not among them. For ``k = 1`` and uniform ``rho`` (what the experiments use) this is their
``L_sup^mu(f)``, the mean classifier's loss averaged over binary tasks, each label equally
likely.

**Jensen** (the proof of their Lemma 4.3). Given the classes, ``x+`` and the ``x_i-`` are
independent of ``x`` with means ``mu_{c+}``, ``mu_{c_i}``, and ``l`` is convex, so the
conditional expectation of the unsupervised loss is at least the mean classifier's loss:

    L_sup^mu(f) <= L_un^!=(f) = (L_un(f) - tau_k L_un^=(f)) / (1 - tau_k).

For ``k = 1``, given ``c- = c+`` the argument has conditional mean 0, so ``L_un^= >= l(0)``
(= 1 for both losses), which is **Lemma 4.3**:

    L_sup^mu(f) <= (L_un(f) - tau) / (1 - tau).

Its slack is ``[L_un^!= - L_sup^mu] + tau / (1 - tau) [L_un^= - l(0)]``: a Jensen gap, plus
a collision term weighted by ``tau / (1 - tau)`` that grows as classes get fewer.

The synthetic classes here are Gaussian in input space (:class:`GaussianClasses`) and ``f``
is a small network onto S^{d-1} (:class:`SphereEncoder`). Expectations over inputs are
Monte-Carlo estimates with intervals (:class:`~alignuniform.theory.MeanCI`); ``mu_c`` is
itself estimated, from a separate sample, and since ``l`` is convex the plug-in mean
classifier's loss is biased *up*, which can only make the bound harder to satisfy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from alignuniform.losses import align_loss, uniform_loss
from alignuniform.theory._common import MeanCI, _check_count, _check_positive

__all__ = [
    "LOSSES",
    "hinge_loss",
    "logistic_loss",
    "loss_at_zero",
    "GaussianClasses",
    "SphereEncoder",
    "sample_class_tuples",
    "class_means",
    "ContrastiveEstimate",
    "contrastive_estimate",
    "mean_classifier_accuracy",
    "alignment_uniformity",
    "train_encoder",
]

Condition = Literal["any", "distinct", "collide"]


def hinge_loss(v: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 + max_i(-v_i))`` over the last axis (k margins)."""
    return torch.clamp(1 - v.min(-1).values, min=0)


def logistic_loss(v: torch.Tensor) -> torch.Tensor:
    """``log2(1 + sum_i e^{-v_i})`` over the last axis, stably."""
    zero = torch.zeros_like(v[..., :1])
    return torch.logsumexp(torch.cat([zero, -v], -1), -1) / math.log(2)


#: The convex, non-increasing losses of the unsupervised and supervised objectives.
LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "hinge": hinge_loss,
    "logistic": logistic_loss,
}


def loss_at_zero(loss: str, k: int = 1) -> float:
    """``l(0)`` with k margins: 1 for hinge, ``log2(1 + k)`` for logistic."""
    return float(LOSSES[loss](torch.zeros(1, _check_count(k, "k"), dtype=torch.float64)))


@dataclass(frozen=True)
class GaussianClasses:
    """Latent classes ``D_c = N(means[c], sigma^2 I)`` in input space, with weights ``rho``.

    Build with :meth:`random`; sample with a ``torch.Generator``.
    """

    means: torch.Tensor
    sigma: float
    rho: torch.Tensor

    @classmethod
    def random(
        cls,
        n_classes: int,
        input_dim: int,
        sigma: float,
        seed: int,
        rho: torch.Tensor | None = None,
    ) -> GaussianClasses:
        """Class means drawn from ``N(0, I)`` in R^input_dim (seeded); uniform ``rho`` by
        default."""
        n_classes = _check_count(n_classes, "n_classes", 2)
        gen = torch.Generator().manual_seed(seed)
        means = torch.randn(n_classes, _check_count(input_dim, "input_dim"), generator=gen,
                            dtype=torch.float64)
        if rho is None:
            rho = torch.full((n_classes,), 1.0 / n_classes, dtype=torch.float64)
        rho = torch.as_tensor(rho, dtype=torch.float64)
        if rho.shape != (n_classes,) or (rho < 0).any() or not math.isclose(rho.sum(), 1.0):
            raise ValueError(f"rho must be {n_classes} non-negative weights summing to 1")
        return cls(means, _check_positive(sigma, "sigma"), rho)

    @property
    def n_classes(self) -> int:
        return self.means.shape[0]

    def tau(self, k: int = 1) -> float:
        """Class collision ``tau_k = P(c+ in {c_1..c_k}) = 1 - sum_c rho_c (1 - rho_c)^k``."""
        return float(1 - (self.rho * (1 - self.rho) ** _check_count(k, "k")).sum())

    def draw_classes(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Classes ``c ~ rho`` of the given shape (int64)."""
        n = math.prod(shape)
        return torch.multinomial(self.rho, n, replacement=True, generator=gen).reshape(shape)

    def sample(self, classes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One draw ``x ~ D_c`` per entry of ``classes``: ``classes.shape + (input_dim,)``."""
        mean = self.means[classes]
        return mean + self.sigma * torch.randn(mean.shape, generator=gen, dtype=mean.dtype)


class SphereEncoder(nn.Module):
    """``f(x) = normalize(W2 relu(W1 x))`` (or ``normalize(W x)`` without a hidden layer).

    Args:
        input_dim: input size.
        dim: output size d; outputs lie on S^{d-1}.
        hidden: hidden width, or 0 for a linear map.
        seed: initialisation seed.
    """

    def __init__(self, input_dim: int, dim: int, hidden: int = 0, *, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if hidden:
                self.net: nn.Module = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU(),
                                         nn.Linear(hidden, dim))
            else:
                self.net = nn.Linear(input_dim, dim, bias=False)
        self.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(x), dim=-1)


def sample_class_tuples(
    classes: GaussianClasses, n: int, k: int, condition: Condition, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` tuples ``(c+, (c_1..c_k))`` drawn iid from ``rho``, conditioned as asked.

    ``condition``: ``"any"`` (no conditioning), ``"distinct"`` (``c+`` not among the
    ``c_i``) or ``"collide"`` (``c+`` among them). Conditioning is by rejection, so the
    conditional law is exact.

    Returns:
        ``(positive classes (n,), negative classes (n, k))``.
    """
    n, k = _check_count(n, "n"), _check_count(k, "k")
    keep_p, keep_n, have = [], [], 0
    while have < n:
        pos = classes.draw_classes((2 * n,), gen)
        neg = classes.draw_classes((2 * n, k), gen)
        hit = (neg == pos[:, None]).any(1)
        mask = {"any": torch.ones_like(hit), "distinct": ~hit, "collide": hit}[condition]
        keep_p.append(pos[mask])
        keep_n.append(neg[mask])
        have += int(mask.sum())
    return torch.cat(keep_p)[:n], torch.cat(keep_n)[:n]


@torch.no_grad()
def class_means(
    f: Callable[[torch.Tensor], torch.Tensor], classes: GaussianClasses, n_per_class: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """Monte-Carlo ``mu_c = E_{x ~ D_c} f(x)`` from ``n_per_class`` draws each: (K, d)."""
    n_per_class = _check_count(n_per_class, "n_per_class")
    labels = torch.arange(classes.n_classes).repeat_interleave(n_per_class)
    return f(classes.sample(labels, gen)).reshape(classes.n_classes, n_per_class, -1).mean(1)


@dataclass(frozen=True)
class ContrastiveEstimate:
    """Both sides of Arora et al.'s bounds for one ``f``, one loss and ``k`` negatives.

    Every field is a :class:`MeanCI` from independent batches unless said otherwise:
    ``l_un`` (unconditioned), ``l_un_distinct`` (``c+`` not among the negatives),
    ``l_un_collide`` (a collision), ``l_sup_mu`` (the mean classifier, on the ``distinct``
    batch), ``jensen_slack`` (``l_un_distinct - l_sup_mu`` per sample, paired on that batch).
    """

    loss: str
    k: int
    tau: float
    loss_at_zero: float
    l_un: MeanCI
    l_un_distinct: MeanCI
    l_un_collide: MeanCI
    l_sup_mu: MeanCI
    jensen_slack: MeanCI

    @property
    def decomposition_error(self) -> MeanCI:
        """``L_un - [(1 - tau_k) L_un^!= + tau_k L_un^=]`` (expectation 0)."""
        t = self.tau
        split = MeanCI((1 - t) * self.l_un_distinct.mean + t * self.l_un_collide.mean,
                       math.hypot((1 - t) * self.l_un_distinct.se, t * self.l_un_collide.se))
        return self.l_un - split

    @property
    def lemma43_bound(self) -> MeanCI:
        """``(L_un - tau l(0)) / (1 - tau)``: Lemma 4.3's right-hand side (meaningful for k=1)."""
        t = self.tau
        return MeanCI((self.l_un.mean - t * self.loss_at_zero) / (1 - t), self.l_un.se / (1 - t))

    @property
    def lemma43_slack(self) -> MeanCI:
        """Lemma 4.3's right-hand side minus ``L_sup^mu`` (>= 0 by the lemma, for k = 1)."""
        return self.lemma43_bound - self.l_sup_mu

    @property
    def collision_excess(self) -> MeanCI:
        """``L_un^= - l(0)`` (>= 0 by Jensen for k = 1)."""
        return MeanCI(self.l_un_collide.mean - self.loss_at_zero, self.l_un_collide.se)

    def as_dict(self) -> dict:
        """Plain numbers: every interval as a dict, plus the derived ones."""
        out: dict = {"loss": self.loss, "k": self.k, "tau": self.tau,
                     "loss_at_zero": self.loss_at_zero}
        for name in ("l_un", "l_un_distinct", "l_un_collide", "l_sup_mu", "jensen_slack",
                     "decomposition_error", "lemma43_bound", "lemma43_slack",
                     "collision_excess"):
            out[name] = getattr(self, name).as_dict()
        return out


@torch.no_grad()
def _losses(
    f: Callable[[torch.Tensor], torch.Tensor], classes: GaussianClasses, loss: str, k: int,
    n: int, condition: Condition, gen: torch.Generator, means: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample unsupervised loss (and the mean classifier's, given ``means``) (n,)."""
    pos, neg = sample_class_tuples(classes, n, k, condition, gen)
    fx, fp = f(classes.sample(pos, gen)), f(classes.sample(pos, gen))
    fn = f(classes.sample(neg, gen))  # (n, k, d)
    ell = LOSSES[loss]
    un = ell(((fp[:, None, :] - fn) * fx[:, None, :]).sum(-1))
    sup = None
    if means is not None:
        sup = ell(((means[pos][:, None, :] - means[neg]) * fx[:, None, :]).sum(-1))
    return un, sup


def contrastive_estimate(
    f: Callable[[torch.Tensor], torch.Tensor],
    classes: GaussianClasses,
    means: torch.Tensor,
    loss: str = "logistic",
    k: int = 1,
    n: int = 10000,
    gen: torch.Generator | None = None,
) -> ContrastiveEstimate:
    """Estimate ``L_un``, its two conditional parts and ``L_sup^mu`` for ``f``, ``n`` samples each.

    Args:
        f: the representation (inputs -> unit vectors).
        classes: the latent classes.
        means: ``mu_c`` rows (K, d), e.g. :func:`class_means` from an independent sample.
        loss: ``"hinge"`` or ``"logistic"``.
        k: number of negatives.
        n: samples per batch (three independent batches).
        gen: random state (seed 0 when None).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    un_any, _ = _losses(f, classes, loss, k, n, "any", gen)
    un_distinct, sup = _losses(f, classes, loss, k, n, "distinct", gen, means)
    un_collide, _ = _losses(f, classes, loss, k, n, "collide", gen)
    assert sup is not None  # the "distinct" draw scores the mean classifier
    return ContrastiveEstimate(
        loss=loss, k=k, tau=classes.tau(k), loss_at_zero=loss_at_zero(loss, k),
        l_un=MeanCI.of(un_any.numpy()), l_un_distinct=MeanCI.of(un_distinct.numpy()),
        l_un_collide=MeanCI.of(un_collide.numpy()), l_sup_mu=MeanCI.of(sup.numpy()),
        jensen_slack=MeanCI.of((un_distinct - sup).numpy()),
    )


@torch.no_grad()
def mean_classifier_accuracy(
    f: Callable[[torch.Tensor], torch.Tensor], classes: GaussianClasses, means: torch.Tensor,
    n: int, gen: torch.Generator,
) -> MeanCI:
    """Accuracy of ``argmax_c f(x)^T mu_c`` over all K classes, ``c ~ rho``, ``x ~ D_c``."""
    labels = classes.draw_classes((_check_count(n, "n", 2),), gen)
    pred = (f(classes.sample(labels, gen)) @ means.T).argmax(1)
    return MeanCI.of((pred == labels).double().numpy())


@torch.no_grad()
def alignment_uniformity(
    f: Callable[[torch.Tensor], torch.Tensor], classes: GaussianClasses, n: int,
    gen: torch.Generator, t: float = 2.0,
) -> tuple[float, float]:
    """Wang & Isola's ``L_align`` (alpha 2) over positive pairs and ``L_uniform`` (t) of ``f``.

    Positive pairs are Arora et al.'s: two independent draws from one class.
    """
    labels = classes.draw_classes((_check_count(n, "n", 2),), gen)
    fx, fp = f(classes.sample(labels, gen)), f(classes.sample(labels, gen))
    return float(align_loss(fx, fp)), float(uniform_loss(fx, t))


Objective = Literal["hinge", "logistic", "align_uniform"]


def train_encoder(
    f: nn.Module,
    classes: GaussianClasses,
    objective: Objective,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 0.01,
    k: int = 1,
    gen: torch.Generator,
    record_every: int,
    record: Callable[[int], dict],
) -> list[dict]:
    """Train ``f`` in place with Adam on fresh batches from the latent classes.

    Objectives: ``"hinge"`` / ``"logistic"``: Arora et al.'s ``L_un`` with ``k`` negatives;
    ``"align_uniform"``: Wang & Isola's ``L_align + (L_uniform(x) + L_uniform(x+)) / 2``
    (alpha 2, t 2) on positive pairs (two draws from one class).

    Args:
        f: the encoder, trained in place.
        classes: the latent classes the batches are drawn from.
        objective: ``"hinge"``, ``"logistic"`` or ``"align_uniform"``.
        steps: optimiser steps.
        batch_size: positive pairs per step (each with ``k`` negatives for ``L_un``).
        lr: Adam's learning rate.
        k: negatives per pair for ``L_un``.
        gen: random state for the batches.
        record_every: record every this many steps.
        record: called with the step at step 0, every ``record_every`` steps and at the end,
            in eval mode without gradients.

    Returns:
        ``record``'s dicts, each with ``step`` added.
    """
    if objective not in (*LOSSES, "align_uniform"):
        raise ValueError(f"objective must be hinge, logistic or align_uniform, got {objective!r}")
    steps, record_every = _check_count(steps, "steps"), _check_count(record_every, "record_every")
    opt = torch.optim.Adam(f.parameters(), lr=_check_positive(lr, "lr"))
    records = []
    for step in range(steps + 1):
        if step % record_every == 0 or step == steps:
            f.eval()
            with torch.no_grad():
                records.append({"step": step, **record(step)})
            f.train()
        if step == steps:
            break
        pos = classes.draw_classes((batch_size,), gen)
        fx, fp = f(classes.sample(pos, gen)), f(classes.sample(pos, gen))
        if objective == "align_uniform":
            loss = align_loss(fx, fp) + (uniform_loss(fx) + uniform_loss(fp)) / 2
        else:
            fn = f(classes.sample(classes.draw_classes((batch_size, k), gen), gen))
            loss = LOSSES[objective](((fp[:, None, :] - fn) * fx[:, None, :]).sum(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return records
