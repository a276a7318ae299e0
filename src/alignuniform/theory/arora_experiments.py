"""Arora et al.'s bounds as an experiment: synthetic latent classes, trained and random f.

One :func:`run_arora` call builds seeded Gaussian latent classes, trains a small encoder onto
the sphere twice from the same initialisation (with Arora et al.'s logistic ``L_un``, and
with Wang & Isola's ``L_align + L_uniform``), and at every recorded step estimates both sides
of every bound of :mod:`alignuniform.theory.arora` (hinge and logistic), the mean
classifier's accuracy, ``L_align`` and ``L_uniform``. Step 0 is the random ``f``. It then
varies the number of classes (``tau = 1/K``) and the number of negatives ``k``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy import stats

from alignuniform.theory.arora import (
    LOSSES,
    GaussianClasses,
    SphereEncoder,
    alignment_uniformity,
    class_means,
    contrastive_estimate,
    mean_classifier_accuracy,
    train_encoder,
)
from alignuniform.theory.checks import Z_CHECK, Check

__all__ = ["AroraSettings", "AroraResult", "QUICK", "run_arora", "OBJECTIVES"]

#: How the encoder is trained along the recorded trajectories.
OBJECTIVES = ("logistic", "align_uniform")


@dataclass(frozen=True)
class AroraSettings:
    """Sizes of the Arora et al. experiment; the defaults are the full (report) size."""

    n_classes: int = 8
    input_dim: int = 16
    dim: int = 8
    hidden: int = 32
    sigma: float = 2.0
    steps: int = 600
    batch_size: int = 256
    lr: float = 0.01
    record_every: int = 50
    #: samples per Monte-Carlo batch of every estimate
    n_eval: int = 20000
    #: samples per class for the mean classifier's mu_c
    n_mean: int = 5000
    #: numbers of classes for the slack against tau = 1/K
    tau_classes: tuple[int, ...] = (2, 3, 4, 8, 16, 32)
    tau_steps: int = 300
    #: numbers of negatives for the k-negative bounds
    ks: tuple[int, ...] = (1, 2, 4, 8, 16)


QUICK = AroraSettings(steps=150, record_every=50, n_eval=3000, n_mean=1000,
                      tau_classes=(2, 4, 16), tau_steps=100, ks=(1, 4))


def _z(ci: dict) -> float:
    """``mean / se``: how many standard errors an estimate lies above 0."""
    if ci["se"] > 0:
        return ci["mean"] / ci["se"]
    return 0.0 if ci["mean"] == 0 else math.copysign(math.inf, ci["mean"])


@dataclass(frozen=True)
class AroraResult:
    """Every estimate of the experiment, as plain dicts.

    ``trajectories[objective]``: records with ``step``, ``accuracy`` (a MeanCI dict),
    ``alignment``, ``uniformity`` and ``estimates[loss]`` (a
    :meth:`~alignuniform.theory.arora.ContrastiveEstimate.as_dict`). ``by_tau``: one row per
    number of classes (``n_classes``, ``tau``, ``estimates``, ``accuracy``) for ``f``
    trained with logistic ``L_un``. ``k_negative``: one row per k (``k``, ``tau_k``,
    ``estimates``) for the ``f`` at the end of the logistic trajectory.
    """

    tau: float
    trajectories: dict[str, list[dict]]
    by_tau: list[dict]
    k_negative: list[dict]

    def _k1_estimates(self) -> list[dict]:
        rows = [r for recs in self.trajectories.values() for r in recs] + self.by_tau
        return [e for r in rows for e in r["estimates"].values()]

    def _worst(self, estimates: list[dict], key: str, two_sided: bool) -> float:
        zs = [_z(e[key]) for e in estimates]
        return max(abs(z) for z in zs) if two_sided else min(zs)

    def checks(self) -> list[Check]:
        out = []
        k1 = self._k1_estimates()
        worst = self._worst(k1, "decomposition_error", two_sided=True)
        out.append(Check(
            "L_un = (1 - tau) L_un^!= + tau L_un^= (independent batches, within 4 SE)",
            worst <= Z_CHECK,
            f"largest |z| {worst:.2f} over {len(k1)} estimates (hinge and logistic; random, "
            "trained and every tau)"))
        first = {name: recs[0] for name, recs in self.trajectories.items()}
        groups = {
            "random f": [e for r in first.values() for e in r["estimates"].values()],
            "f trained with L_un": [e for r in self.trajectories["logistic"][1:]
                                    for e in r["estimates"].values()],
            "f trained with L_align + L_uniform": [
                e for r in self.trajectories["align_uniform"][1:]
                for e in r["estimates"].values()],
        }
        for what, estimates in groups.items():
            lowest = self._worst(estimates, "jensen_slack", two_sided=False)
            resolved = sum(_z(e["jensen_slack"]) > 1.96 for e in estimates)
            out.append(Check(
                f"{what}: L_sup^mu <= L_un^!= (Jensen; not below by 4 SE)", lowest >= -Z_CHECK,
                f"smallest z of the slack {lowest:.2f}; slack resolved > 0 in "
                f"{resolved}/{len(estimates)}"))
        lowest = self._worst(k1, "lemma43_slack", two_sided=False)
        out.append(Check(
            "Lemma 4.3: L_sup^mu <= (L_un - tau) / (1 - tau) (not below by 4 SE)",
            lowest >= -Z_CHECK,
            f"smallest z {lowest:.2f} over {len(k1)} estimates"))
        lowest = self._worst(k1, "collision_excess", two_sided=False)
        out.append(Check(
            "L_un^= >= l(0) = 1 (Jensen within a class; not below by 4 SE)",
            lowest >= -Z_CHECK, f"smallest z {lowest:.2f}"))
        by_tau = [r["estimates"]["logistic"] for r in self.by_tau]
        most = max(by_tau, key=lambda e: e["tau"])
        least = min(by_tau, key=lambda e: e["tau"])
        weighted = {e["tau"]: e["tau"] / (1 - e["tau"]) * e["collision_excess"]["mean"]
                    for e in by_tau}
        out.append(Check(
            "the collision part of Lemma 4.3's slack, tau/(1-tau) (L_un^= - 1), grows with tau",
            _increasing([weighted[t] for t in sorted(weighted)]),
            "logistic: " + ", ".join(f"tau={t:.3g}: {v:.4f}" for t, v in sorted(weighted.items()))
            + f"; whole slack {least['lemma43_slack']['mean']:.3f} (tau={least['tau']:.3g}) to "
            f"{most['lemma43_slack']['mean']:.3f} (tau={most['tau']:.3g})"))
        kneg = [e for r in self.k_negative for e in r["estimates"].values()]
        worst = self._worst(kneg, "decomposition_error", two_sided=True)
        lowest = self._worst(kneg, "jensen_slack", two_sided=False)
        ks = sorted({r["k"] for r in self.k_negative})
        out.append(Check(
            "k negatives: L_un = (1 - tau_k) L_un^!= + tau_k L_un^= (within 4 SE)",
            worst <= Z_CHECK, f"largest |z| {worst:.2f}, k in {ks}"))
        out.append(Check(
            "k negatives: L_sup^mu <= L_un^!= (Jensen; not below by 4 SE)",
            lowest >= -Z_CHECK, f"smallest z {lowest:.2f}, k in {ks}"))
        for objective, recs in self.trajectories.items():
            a, b = recs[0], recs[-1]
            gain = (b["accuracy"]["mean"] - a["accuracy"]["mean"]) / math.hypot(
                a["accuracy"]["se"], b["accuracy"]["se"])
            out.append(Check(
                f"training with {_NAMES[objective]} raises the mean classifier's accuracy "
                "(by 4 SE)", gain > Z_CHECK,
                f"step {a['step']} -> {b['step']}: accuracy {a['accuracy']['mean']:.3f} -> "
                f"{b['accuracy']['mean']:.3f}, L_align {a['alignment']:.3f} -> "
                f"{b['alignment']:.3f}, L_uniform {a['uniformity']:.3f} -> "
                f"{b['uniformity']:.3f}; Spearman with accuracy over the {len(recs)} records: "
                f"L_align {_spearman(recs, 'alignment'):.2f}, "
                f"L_uniform {_spearman(recs, 'uniformity'):.2f}"))
        return out


def _spearman(records: list[dict], key: str) -> float:
    """Rank correlation of ``key`` with the mean classifier's accuracy across records."""
    acc, values = [r["accuracy"]["mean"] for r in records], [r[key] for r in records]
    if len(set(acc)) < 2 or len(set(values)) < 2:
        return math.nan  # undefined for a constant series (shown as "nan" in the detail)
    return float(stats.spearmanr(acc, values).statistic)


def _increasing(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


_NAMES = {"logistic": "L_un (logistic)", "align_uniform": "L_align + L_uniform"}


def _evaluate(f, classes: GaussianClasses, cfg: AroraSettings, gen: torch.Generator,
              k: int = 1) -> dict:
    means = class_means(f, classes, cfg.n_mean, gen)
    estimates = {loss: contrastive_estimate(f, classes, means, loss, k, cfg.n_eval, gen).as_dict()
                 for loss in LOSSES}
    alignment, uniformity = alignment_uniformity(f, classes, min(cfg.n_eval, 4000), gen)
    return {"accuracy": mean_classifier_accuracy(f, classes, means, cfg.n_eval, gen).as_dict(),
            "alignment": alignment, "uniformity": uniformity, "estimates": estimates}


def run_arora(cfg: AroraSettings, seed: int) -> AroraResult:
    """Run the experiment from ``seed`` alone (the classes, the initialisation, the draws), so
    it gives the same numbers whether or not the other sections ran before it."""
    class_seed, init_seed = seed, seed + 1
    gen = torch.Generator().manual_seed(seed + 2)

    def classes_of(n_classes: int) -> GaussianClasses:
        return GaussianClasses.random(n_classes, cfg.input_dim, cfg.sigma, class_seed)

    def encoder() -> SphereEncoder:
        return SphereEncoder(cfg.input_dim, cfg.dim, cfg.hidden, seed=init_seed)

    classes = classes_of(cfg.n_classes)
    trajectories, trained = {}, {}
    for objective in OBJECTIVES:
        f = trained[objective] = encoder()
        trajectories[objective] = train_encoder(
            f, classes, objective, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,  # type: ignore[arg-type]
            gen=gen, record_every=cfg.record_every,
            record=lambda step, f=f: _evaluate(f, classes, cfg, gen))  # type: ignore[misc]
    by_tau = []
    for n_classes in cfg.tau_classes:
        other = classes_of(n_classes)
        f = encoder()
        last = train_encoder(f, other, "logistic", steps=cfg.tau_steps, batch_size=cfg.batch_size,
                             lr=cfg.lr, gen=gen, record_every=cfg.tau_steps,
                             record=lambda step, f=f, other=other: _evaluate(f, other, cfg, gen))  # type: ignore[misc]
        by_tau.append({"n_classes": n_classes, "tau": other.tau(), **last[-1]})
    f = trained["logistic"].eval()
    means = class_means(f, classes, cfg.n_mean, gen)
    k_negative = [
        {"k": k, "tau_k": classes.tau(k),
         "estimates": {loss: contrastive_estimate(f, classes, means, loss, k, cfg.n_eval,
                                                  gen).as_dict() for loss in LOSSES}}
        for k in cfg.ks
    ]
    return AroraResult(classes.tau(), trajectories, by_tau, k_negative)
