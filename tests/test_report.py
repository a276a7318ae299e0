"""Tests for alignuniform.report: figures and the HTML/Markdown report."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from alignuniform.report.figures import (
    curves_figure,
    gaussian_kde_2d,
    plane_figure,
    s1_figure,
    vmf_kde,
)


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


def test_vmf_kde_matches_a_float64_loop_and_integrates_to_one():
    from scipy.special import i0

    rng = np.random.default_rng(0)
    angles = rng.uniform(-np.pi, np.pi, 7)
    grid = np.linspace(-np.pi, np.pi, 2001)
    kappa = 4.0
    expected = np.array([
        sum(np.exp(kappa * np.cos(g - a)) for a in angles) / (len(angles) * 2 * np.pi * i0(kappa))
        for g in grid
    ])
    got = vmf_kde(angles, grid, kappa)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    assert abs(np.trapezoid(got, grid) - 1.0) < 1e-6
    # large kappa must not overflow (exp(kappa) alone would at kappa = 1000)
    assert np.isfinite(vmf_kde(angles, grid, 1000.0)).all()
    with pytest.raises(ValueError, match="kappa"):
        vmf_kde(angles, grid, 0.0)


def test_gaussian_kde_2d_matches_the_exact_kernel_sum():
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 0.4, (50, 2))
    sigma, extent, bins = 0.15, 1.3, 161
    density = gaussian_kde_2d(pts, sigma=sigma, extent=extent, bins=bins)
    centres = np.linspace(-extent, extent, bins + 1)
    centres = (centres[:-1] + centres[1:]) / 2
    gx, gy = np.meshgrid(centres, centres)  # rows index y, as the function documents
    d2 = (gx[..., None] - pts[:, 0]) ** 2 + (gy[..., None] - pts[:, 1]) ** 2
    exact = np.exp(-d2 / (2 * sigma**2)).mean(-1) / (2 * np.pi * sigma**2)
    # binning moves each point by at most half a cell: small relative to the peak
    assert np.abs(density - exact).max() < 0.05 * exact.max()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        gaussian_kde_2d(np.zeros((3, 3)))


def _circle_encoder(name, spread, rng, n=300):
    labels = rng.integers(0, 10, n)
    theta = labels * spread + rng.normal(0, 0.2, n)
    return {"name": name, "points": np.c_[np.cos(theta), np.sin(theta)], "labels": labels,
            "pos_dist": np.abs(rng.normal(0.3, 0.1, n)), "subtitle": "test"}


def test_s1_figure_writes_one_column_per_encoder(tmp_path):
    rng = np.random.default_rng(2)
    encoders = [_circle_encoder("random", 0.05, rng), _circle_encoder("trained", 0.6, rng)]
    out = s1_figure(encoders, tmp_path / "s1.png", classes=[0, 1, 2],
                    class_names=[str(i) for i in range(10)])
    assert _is_png_with_ink(out)
    one = imread(s1_figure(encoders[:1], tmp_path / "one.png"))
    assert imread(out).shape[1] > 1.5 * one.shape[1]  # two columns are wider than one
    unlabelled = {k: v for k, v in encoders[0].items() if k != "labels"}
    assert _is_png_with_ink(s1_figure([unlabelled], tmp_path / "nolabels.png"))


def test_s1_figure_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        s1_figure([], tmp_path / "x.png")
    with pytest.raises(KeyError, match="pos_dist"):
        s1_figure([{"name": "a", "points": np.zeros((3, 2))}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="2-d embeddings"):
        s1_figure([{"name": "a", "points": np.zeros((3, 5)), "pos_dist": np.zeros(3)}],
                  tmp_path / "x.png")


def test_curves_figure_draws_every_numeric_key(tmp_path):
    runs = {
        "contrastive": [{"epoch": e, "loss": 3.0 - e, "contrastive": 3.0 - e, "lr": 0.1,
                         "wall_s": 1.0} for e in range(1, 4)],
        "align+uniform": [{"epoch": e, "loss": -e, "align": 0.2 * e, "uniform": -e}
                          for e in range(1, 4)],
    }
    assert _is_png_with_ink(curves_figure(runs, tmp_path / "c.png"))
    assert _is_png_with_ink(curves_figure(runs, tmp_path / "k.png", keys=["loss"]))
    with pytest.raises(ValueError, match="no numeric quantity"):
        curves_figure({"a": [{"epoch": 1, "lr": 0.1}]}, tmp_path / "n.png")
