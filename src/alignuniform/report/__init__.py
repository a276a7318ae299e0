"""Figures and pages: the S^1 figure, the alignment-uniformity plane, training curves, and the
self-contained HTML/Markdown report.

Kept light on purpose: submodules (``figures``, ``page``) are imported where used, so
``import alignuniform.report`` costs nothing and never pulls in matplotlib.
"""
