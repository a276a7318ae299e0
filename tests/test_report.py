"""Tests for alignuniform.report: figures and the HTML/Markdown report."""

from __future__ import annotations

import json

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


def _drawn_plane(monkeypatch, tmp_path, points, **kwargs):
    """The figure ``plane_figure`` saves (and checks the PNG it wrote)."""
    from alignuniform.report import figures

    drawn, save = [], figures.save_figure

    def keep(fig, path):
        drawn.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    assert _is_png_with_ink(plane_figure(points, tmp_path / "p.png", **kwargs))
    (fig,) = drawn
    return fig


A, B = {"name": "a", "align": 1.0, "uniform": -1.0}, {"name": "b", "align": 2.0, "uniform": -2.0}


@pytest.mark.parametrize("points, color_key", [
    ([A], "accuracy"),  # no point has the key
    ([{**A, "accuracy": 0.5}, B], "accuracy"),  # one point lacks it
    ([{**A, "accuracy": 0.5}, {**B, "accuracy": 0.7}], None),  # colouring switched off
])
def test_plane_figure_without_colour_key(tmp_path, monkeypatch, points, color_key):
    """The markers share one colour and no colour bar is drawn; with the key on every point
    (the control), a colour bar and one colour per value."""
    from matplotlib.colors import to_rgba

    fig = _drawn_plane(monkeypatch, tmp_path, points, color_key=color_key)
    assert len(fig.axes) == 1  # no colour bar
    (markers,) = fig.axes[0].collections
    np.testing.assert_array_equal(markers.get_offsets(),
                                  [[p["align"], p["uniform"]] for p in points])
    assert [tuple(c) for c in markers.get_facecolors()] == [to_rgba("tab:blue")]
    keyed = [{**p, "accuracy": 0.1 * i} for i, p in enumerate(points)]
    fig = _drawn_plane(monkeypatch, tmp_path, keyed, color_key="accuracy")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "accuracy"
    assert len({tuple(c) for c in fig.axes[0].collections[0].get_facecolors()}) == len(points)


@pytest.mark.parametrize("n_close", [2, 4])
def test_plane_labels_do_not_overlap_for_near_coincident_points(tmp_path, monkeypatch, n_close):
    """The demo's two trained encoders can land on one spot: their labels must not."""
    from matplotlib.text import Text

    from alignuniform.report import figures

    drawn = {}

    def keep(fig, path):  # measure the figure as it is saved
        drawn["fig"] = fig
        fig.canvas.draw()
        return path

    monkeypatch.setattr(figures, "save_figure", keep)
    points = [{"name": f"encoder number {i}", "align": 0.229 + 1e-4 * i,
               "uniform": -1.471 - 1e-4 * i, "accuracy": 0.4 + 0.01 * i}
              for i in range(n_close)]
    points.append({"name": "random init", "align": 0.014, "uniform": -0.06, "accuracy": 0.19})
    plane_figure(points, tmp_path / "plane.png", bound=-1.575, label_fmt="{name}",
                 paths={"encoder number 0": [(0.1, -0.5), (0.229, -1.471)]})
    fig = drawn["fig"]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text().startswith(("encoder", "random"))]
    assert sorted(t.get_text() for t in labels) == sorted(p["name"] for p in points)
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    # nor does a label hide a marker, or the legend a label
    centres = ax.transData.transform([(p["align"], p["uniform"]) for p in points])
    for box in boxes:
        assert not any(box.contains(x, y) for x, y in centres)
        assert not box.overlaps(ax.get_legend().get_window_extent(renderer))


def test_a_failed_figure_write_keeps_the_old_file_and_closes_the_figure(tmp_path, monkeypatch):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    path = tmp_path / "plane.png"
    path.write_bytes(b"the previous figure")

    def fail(self, f, **kwargs):
        f.write(b"half a PNG")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fail)
    before = set(plt.get_fignums())
    with pytest.raises(OSError, match="disk full"):
        plane_figure([{"name": "a", "align": 1.0, "uniform": -1.0}], path)
    assert path.read_bytes() == b"the previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["plane.png"]
    assert set(plt.get_fignums()) == before


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


# ---------------------------------------------------------------------------------------------
# pages: report.html / report.md

def _fake_eval(linear, knn, align, unif, bound=-1.575):
    layer = {"linear_acc": linear, "knn5_acc": knn, "mean_acc": knn - 0.02, "alignment": align,
             "uniformity": unif, "uniformity_bound": bound, "dim": 2}
    return {"layers": {"embedding": layer, "penultimate": {**layer, "dim": 16}}}


def _fake_encoders(rng):
    encoders = []
    for name, spread, lin in (("random init", 0.05, 0.16), ("align+uniform", 0.6, 0.4)):
        enc = _circle_encoder(name, spread, rng)
        enc["eval"] = _fake_eval(lin, lin - 0.01, 0.3, -0.2 - spread)
        if name != "random init":
            enc["epochs"] = [{"epoch": e, "loss": -e, "align": 0.1 * e, "uniform": -e,
                              "heldout_knn_acc": 0.1 * e, "heldout_align": 0.1 * e,
                              "heldout_uniform": -0.3 * e} for e in range(1, 4)]
            enc["train_s"] = 12.5
        encoders.append(enc)
    return encoders


@pytest.fixture(scope="module")
def built_report(tmp_path_factory):
    from alignuniform.report.build import build_report

    out = tmp_path_factory.mktemp("report")
    written = build_report(out, _fake_encoders(np.random.default_rng(3)), title="Test <report>",
                           intro="Intro with `code` & <angle>.", findings=["a finding"],
                           settings=["a setting"], reproduce=["alignuniform demo"],
                           class_names=[str(i) for i in range(10)])
    return out, written


def test_build_report_writes_every_figure_and_both_pages(built_report):
    out, written = built_report
    assert set(written) == {"s1", "plane", "curves", "html", "markdown"}
    for key in ("s1", "plane", "curves"):
        assert _is_png_with_ink(written[key])
    md = written["markdown"].read_text()
    for key in ("s1", "plane", "curves"):
        assert f"]({key}.png)" in md  # linked relative to the page
    assert "| random init | 16.0% | 15.0% | 13.0% |" in md  # linear, 5-NN, mean classifier


def test_report_html_is_self_contained_and_escaped(built_report):
    import re
    from html.parser import HTMLParser

    html_text = built_report[1]["html"].read_text()
    images = re.findall(r'<img src="([^"]+)"', html_text)
    assert len(images) == 3 and all(s.startswith("data:image/png;base64,") for s in images)
    assert not re.search(r'(src|href)="(?!data:)', html_text)  # nothing fetched from outside
    assert "Test &lt;report&gt;" in html_text and "<code>code</code>" in html_text
    assert "&lt;angle&gt;" in html_text and "<angle>" not in html_text

    class Balance(HTMLParser):
        void = {"meta", "img", "br", "hr", "link", "input"}

        def __init__(self):
            super().__init__()
            self.stack = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
            self.stack.pop()

    parser = Balance()
    parser.feed(html_text)
    assert parser.stack == []


def test_write_page_rejects_missing_figures_and_ragged_tables(tmp_path):
    from alignuniform.report.page import Section, Table, write_page

    with pytest.raises(FileNotFoundError, match="missing"):
        write_page(tmp_path, "t", [Section("x", figure=tmp_path / "nope.png")])
    with pytest.raises(ValueError, match="row 0"):
        Table(["a", "b"], [["1"]])


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


_CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None,
                    reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(built_report, tmp_path):
    import subprocess

    html_path = built_report[1]["html"]
    shot = tmp_path / "shot.png"
    base = [_chromium(), *_CHROMIUM_FLAGS]
    subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile1'}", f"--screenshot={shot}",
                    "--window-size=1200,2400", html_path.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.is_file()
    img = imread(shot)
    assert img.shape[:2] == (2400, 1200)
    assert float(img[..., :3].std()) > 0.05  # not a blank page

    # every embedded figure must decode in the browser: a copy of the page records the
    # natural width of each image once loaded, read back from the DOM
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace(
        "</body>", '<script>window.addEventListener("load",()=>{document.body.setAttribute('
        '"data-widths",[...document.images].map(i=>i.naturalWidth).join(","))});</script>'
        "</body>"))
    dom = subprocess.run([*base, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom",
                          probe.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    import re

    widths = re.search(r'data-widths="([^"]*)"', dom)
    assert widths is not None, "the page did not finish loading in chromium"
    values = [int(w) for w in widths.group(1).split(",")]
    assert len(values) == 3 and all(w > 100 for w in values)


# ---------------------------------------------------------------------------------------------
# report_for_run: the files of a run directory, read with errors that name them


@pytest.fixture
def run_dir(tmp_path):
    """A training run folder: a tiny 8-d checkpoint and its eval.json (no training)."""
    import torch

    from alignuniform.checkpoint import save_checkpoint
    from alignuniform.models import build_model

    config = {"model": {"name": "small_cnn", "feat_dim": 8,
                        "kwargs": {"width": 4, "hidden_dim": 16}},
              "data": {"name": "synthetic", "root": None, "recipe": "cifar10",
                       "kwargs": {"n": 40}}}
    torch.manual_seed(0)
    model = build_model("small_cnn", feat_dim=8, width=4, hidden_dim=16)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint.pt", {"model": model.state_dict(), "config": config,
                                             "epoch": 2})
    (run / "eval").mkdir()
    (run / "eval" / "eval.json").write_text(json.dumps(_fake_eval(0.4, 0.39, 0.3, -0.8)))
    return run


def test_report_for_run_skips_a_partial_last_line_of_the_epoch_log(run_dir, tmp_path):
    from alignuniform.report.run import report_for_run

    rows = [{"epoch": e, "loss": -e, "align": 0.1 * e} for e in (1, 2)]
    (run_dir / "epochs.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"epoch": 3, "lo')  # kill -9 mid-append
    written = report_for_run(run_dir, tmp_path / "rep", progress=False)
    assert "(2 epochs of small_cnn" in written["markdown"].read_text()
    assert _is_png_with_ink(written["curves"])


def test_report_for_run_names_a_bad_log_line_or_a_truncated_eval_json(run_dir, tmp_path, capsys):
    from alignuniform.cli import main
    from alignuniform.report.run import report_for_run

    (run_dir / "epochs.jsonl").write_text('{"epoch": 1}\n{"epoch": 2,\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"epochs\.jsonl, line 2: not valid JSON"):
        report_for_run(run_dir, tmp_path / "rep", progress=False)
    (run_dir / "epochs.jsonl").unlink()
    text = (run_dir / "eval" / "eval.json").read_text()
    (run_dir / "eval" / "eval.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"eval\.json, line 1 column \d+: not valid JSON"):
        report_for_run(run_dir, tmp_path / "rep", progress=False)
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / 'eval' / 'eval.json'}, line 1" in err and "Traceback" not in err


def test_the_spectral_metrics_are_a_second_table_where_evaluations_have_them():
    from alignuniform.report.build import results_table, spectral_table

    old = [{"name": "a", "eval": _fake_eval(0.4, 0.3, 0.2, -1.0)}]
    assert spectral_table(old) is None
    new = _fake_eval(0.4, 0.3, 0.2, -1.0)
    new["layers"]["embedding"].update({"rankme": 1.9876, "effective_rank": 1.5,
                                       "stable_rank": 1.25, "alpha_req": None,
                                       "gaussian_w2": 0.1234, "lidar": 1.75})
    encoders = [*old, {"name": "b", "eval": new}]
    assert results_table(encoders).columns[-1] == "train s"
    assert len(results_table(encoders).columns) == 10
    table = spectral_table(encoders)
    assert table is not None and table.columns == [
        "encoder", "linear acc (emb)", "RankMe", "eff. rank", "stable rank", "alpha-ReQ",
        "W2 unif.", "LiDAR"]
    assert table.rows[0] == ["a", "40.0%", *["n/a"] * 6]
    assert table.rows[1] == ["b", "40.0%", "2.0", "1.5", "1.25", "n/a", "0.123", "1.8"]


def test_sweep_page_tables_carry_the_spectral_metrics_where_the_sweep_has_them():
    from alignuniform.report import sweep_page
    from alignuniform.sweep.analysis import analyze_rows

    rng = np.random.default_rng(0)
    rows = [{"id": f"t{i}", "status": "ok", "embedding.alignment": rng.uniform(),
             "embedding.uniformity": -rng.uniform(1, 3), "embedding.uniformity_bound": -3.9,
             "embedding.linear_acc": rng.uniform()} for i in range(12)]
    old = analyze_rows(rows, bootstrap=50)
    old_corr = sweep_page._correlation_table(old, "spearman")
    old_top = sweep_page._top_table(rows, [], 5)
    for i, r in enumerate(rows):
        r["embedding.rankme"] = 100 * r["embedding.linear_acc"]  # rank-identical to accuracy
        r["embedding.lidar"] = None if i < 2 else float(rng.uniform())
    new = analyze_rows(rows, bootstrap=50)
    corr = sweep_page._correlation_table(new, "spearman")
    assert corr.columns == [*old_corr.columns, "vs RankMe", "vs LiDAR"]
    assert [row[: len(old_corr.columns)] for row in corr.rows] == old_corr.rows
    assert corr.rows[0][-2].startswith("+1.00") and "(n = 10)" in corr.rows[0][-1]
    top = sweep_page._top_table(rows, [], 5)
    assert top.columns == [*old_top.columns[:-1], "RankMe", "LiDAR", "collapsed"]
    best = max(rows, key=lambda r: r["embedding.linear_acc"])
    assert top.rows[0][-3] == f"{best['embedding.rankme']:.3f}"
