"""The theory behind alignment and uniformity, as functions and as checked experiments.

Wang & Isola (ICML 2020), the claims about distributions on the sphere, each computed two
ways:

- :mod:`~alignuniform.theory.sphere_sampling`: uniform, von Mises-Fisher, vMF mixtures,
  positive pairs, the 1-D law of ``u.v``, antipodal atoms;
- :mod:`~alignuniform.theory.closed_forms`: the density of ``u.v``, vMF moments, ``0F1``,
  the optimum of ``L_uniform`` by quadrature and Monte Carlo, the antipodal counterexample;
- :mod:`~alignuniform.theory.theorem1`: Theorem 1's limit, the Monte-Carlo gap at finite M,
  the two terms of the limit next to ``L_align`` and ``L_uniform``;
- :mod:`~alignuniform.theory.estimators`: the two batch estimators of ``L_uniform``, their
  relation, floor and bias;
- :mod:`~alignuniform.theory.point_optimisation`: gradient descent of free points on the
  sphere.

Arora et al. (ICML 2019): :mod:`~alignuniform.theory.arora`: latent classes, ``L_un``
(hinge, logistic, k negatives), class collision, the mean classifier and the bounds
``L_sup^mu <= L_un^!=`` and Lemma 4.3.

The claims as experiments with typed results and pass/fail checks:
:mod:`~alignuniform.theory.wang_isola_experiments` and
:mod:`~alignuniform.theory.arora_experiments`; :mod:`~alignuniform.theory.suite` runs them
all (``alignuniform theory``); :mod:`~alignuniform.theory.checks` holds the pass/fail checks
they report.

Everything here is tensor maths: no files, no printing. The Wang & Isola functions are
importable from the package itself:

    >>> from alignuniform import theory
    >>> x = theory.sample_uniform(64, 3, rng=0)
    >>> l1, l2 = theory.batch_uniformity_estimators(x, 2.0)
    >>> bool(l1 >= theory.estimator_floor(3, 2.0, 64)["bound"])
    True
"""

from alignuniform.theory import (
    closed_forms,
    estimators,
    point_optimisation,
    sphere_sampling,
    theorem1,
)
from alignuniform.theory._common import Z95, MeanCI
from alignuniform.theory.checks import Check
from alignuniform.theory.closed_forms import *  # noqa: F403
from alignuniform.theory.estimators import *  # noqa: F403
from alignuniform.theory.point_optimisation import *  # noqa: F403
from alignuniform.theory.sphere_sampling import *  # noqa: F403
from alignuniform.theory.suite import FULL, QUICK, SECTIONS, TheoryRun, TheorySettings, run_suite
from alignuniform.theory.theorem1 import *  # noqa: F403

__all__ = [
    *sphere_sampling.__all__,
    *closed_forms.__all__,
    *theorem1.__all__,
    *estimators.__all__,
    *point_optimisation.__all__,
    "Z95",
    "MeanCI",
    "Check",
    "TheorySettings",
    "TheoryRun",
    "QUICK",
    "FULL",
    "SECTIONS",
    "run_suite",
]
