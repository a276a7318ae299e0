"""Figures and pages: the S^1 figure, the alignment-uniformity plane, training curves, and the
self-contained HTML/Markdown report.

- :mod:`~alignuniform.report.figures`: the figures that take plain arrays and a path (S^1,
  the plane, training curves, KDEs) and the label placement they share;
- :mod:`~alignuniform.report.page`: one self-contained HTML page and its Markdown twin;
- :mod:`~alignuniform.report.build`: the demo's report from evaluated encoders;
- :mod:`~alignuniform.report.run`: the report of one training run (``alignuniform report``);
- :mod:`~alignuniform.report.sweep_page` and :mod:`~alignuniform.report.sweep_figures`: a
  sweep's page and its figures; :mod:`~alignuniform.report.augment_grid`: the augmentation
  study's heat maps;
- :mod:`~alignuniform.report.theory_figures`: one figure per claim of ``alignuniform.theory``;
- :mod:`~alignuniform.report.measure_figure`: the figure of ``alignuniform measure``.

Kept light on purpose: submodules are imported where used, so ``import alignuniform.report``
costs nothing and never pulls in matplotlib.
"""
