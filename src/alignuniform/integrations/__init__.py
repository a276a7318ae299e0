"""Alignment, uniformity and the spectral metrics inside other people's trainers (optional
extras), with collapse detection.

- :mod:`alignuniform.integrations.lightning`: ``AlignUniformCallback`` for Lightning
  (``pip install 'alignuniform[lightning]'``).
- :mod:`alignuniform.integrations.hf`: ``AlignUniformCallback`` for the Hugging Face
  ``transformers.Trainer`` and sentence-transformers' trainer (``pip install 'alignuniform[hf]'``).
- :mod:`alignuniform.integrations.collapse`: ``CollapseGuard``, when both callbacks call the
  held-out embeddings collapsed, and whether they warn or stop training (no extra needed).

Nothing in the library imports this package; each module imports its framework when it is
imported itself, with an error naming the extra when the framework is missing.
"""
