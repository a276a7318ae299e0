"""The theory behind alignment and uniformity, as functions and as checked experiments.

- :mod:`~alignuniform.theory.wang_isola`: Wang & Isola (ICML 2020) claims about distributions
  on the sphere (Theorem 1's limit, the optimum of ``L_uniform``, the batch estimators, ...),
  each computed two ways.
- :mod:`~alignuniform.theory.arora`: Arora et al. (ICML 2019): latent classes, ``L_un``
  (hinge, logistic, k negatives), class collision, the mean classifier and the bounds
  ``L_sup^mu <= L_un^!=`` and Lemma 4.3.
- :mod:`~alignuniform.theory.experiments` and :mod:`~alignuniform.theory.arora_experiments`:
  the claims as experiments with typed results and pass/fail checks;
  :mod:`~alignuniform.theory.suite` runs them all (``alignuniform theory``);
  :mod:`~alignuniform.theory.checks` holds the pass/fail checks they report.

Everything here is tensor maths: no files, no printing.
"""

from alignuniform.theory._common import Z95, MeanCI
from alignuniform.theory.checks import Check
from alignuniform.theory.suite import FULL, QUICK, SECTIONS, TheoryRun, TheorySettings, run_suite
from alignuniform.theory.wang_isola import *  # noqa: F403  (the maths is the package's face)
from alignuniform.theory.wang_isola import __all__ as _wang_isola_all

__all__ = [
    *_wang_isola_all,
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
