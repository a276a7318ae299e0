"""Tests for alignuniform.report: figures and the HTML/Markdown report."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from alignuniform.report.figures import plane_figure


def _is_png_with_ink(path) -> bool:
    img = imread(path)
    return img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50 and float(img.std()) > 0.01


def test_plane_figure_writes_png(tmp_path):
    points = [
        {"name": "random", "align": 0.2, "uniform": -0.5, "accuracy": 0.3},
        {"name": "align+uniform", "align": 0.6, "uniform": -3.4, "accuracy": 0.8},
    ]
    out = plane_figure(points, tmp_path / "sub" / "plane.png", bound=-3.9,
                       label_fmt="{name} ({accuracy:.0%})",
                       paths={"align+uniform": [(0.1, -0.4), (0.5, -2.0), (0.6, -3.4)]})
    assert out == tmp_path / "sub" / "plane.png"
    assert _is_png_with_ink(out)


def test_plane_figure_without_colour_key(tmp_path):
    out = plane_figure([{"name": "a", "align": 1.0, "uniform": -1.0}], tmp_path / "p.png")
    assert _is_png_with_ink(out)


def test_plane_figure_rejects_bad_points(tmp_path):
    with pytest.raises(ValueError, match="at least one point"):
        plane_figure([], tmp_path / "p.png")
    with pytest.raises(KeyError, match="uniform"):
        plane_figure([{"name": "a", "align": 1.0}], tmp_path / "p.png")
    with pytest.raises(ValueError, match="finite"):
        plane_figure([{"name": "a", "align": np.nan, "uniform": 0.0}], tmp_path / "p.png")
    with pytest.raises(KeyError):
        plane_figure([{"name": "a", "align": 1.0, "uniform": 0.0}], tmp_path / "p.png",
                     label_fmt="{missing}")
