"""Turn evaluated encoders into the report: results table, S^1 figure, alignment-uniformity
plane and training curves, written as ``report.html`` + ``report.md`` + PNGs.

Used by ``alignuniform demo`` and ``alignuniform report RUN_DIR`` alike, so both produce the
same page. Each encoder is a dict (see ``build_report``); nothing here trains or evaluates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alignuniform.report.figures import curves_figure, plane_figure, s1_figure
from alignuniform.report.page import Section, Table, write_page

# keys of a training monitor's numbers in epochs.jsonl, drawn as plane trajectories
TRAJECTORY_KEYS = ("heldout_align", "heldout_uniform")
# the embedding's spectral metrics in eval.json, with their column headings and formats
SPECTRAL_COLUMNS = (("rankme", "RankMe", ".1f"), ("effective_rank", "eff. rank", ".1f"),
                    ("stable_rank", "stable rank", ".2f"), ("alpha_req", "alpha-ReQ", ".3f"),
                    ("gaussian_w2", "W2 unif.", ".3f"), ("lidar", "LiDAR", ".1f"))


def _fmt(value: object, spec: str = ".3f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not np.isfinite(value):
        return "n/a"
    return format(value, spec) if isinstance(value, int | float) else str(value)


def _layer(enc: dict, layer: str) -> dict:
    return enc["eval"]["layers"].get(layer, {})


def results_table(encoders: Sequence[dict]) -> Table:
    """The results table: accuracies of both layers (linear, 5-NN; the mean classifier of the
    embedding), alignment, uniformity, bound and training time."""
    columns = ["encoder", "linear acc (emb)", "5-NN acc (emb)", "mean clf (emb)",
               "linear acc (pen)", "5-NN acc (pen)", "alignment", "uniformity", "bound", "train s"]
    rows = []
    for enc in encoders:
        emb, pen = _layer(enc, "embedding"), _layer(enc, "penultimate")
        rows.append([
            enc["name"], _fmt(emb.get("linear_acc"), ".1%"), _fmt(emb.get("knn5_acc"), ".1%"),
            _fmt(emb.get("mean_acc"), ".1%"),
            _fmt(pen.get("linear_acc"), ".1%"), _fmt(pen.get("knn5_acc"), ".1%"),
            _fmt(emb.get("alignment")), _fmt(emb.get("uniformity")),
            _fmt(emb.get("uniformity_bound")), _fmt(enc.get("train_s"), ".1f"),
        ])
    return Table(columns, rows)


def spectral_table(encoders: Sequence[dict]) -> Table | None:
    """The embedding's label-free spectral metrics, a second table beside the results (one
    table of 16 columns does not fit a page); ``None`` when no evaluation has them (those
    made before the metrics existed)."""
    spectral = [c for c in SPECTRAL_COLUMNS
                if any(c[0] in _layer(enc, "embedding") for enc in encoders)]
    if not spectral:
        return None
    rows = [[enc["name"], _fmt(_layer(enc, "embedding").get("linear_acc"), ".1%"),
             *(_fmt(_layer(enc, "embedding").get(key), spec) for key, _, spec in spectral)]
            for enc in encoders]
    return Table(["encoder", "linear acc (emb)", *(head for _, head, _ in spectral)], rows)


def _trajectory(rows: Sequence[dict]) -> list[tuple[float, float]]:
    a, u = TRAJECTORY_KEYS
    return [(r[a], r[u]) for r in rows if r.get(a) is not None and r.get(u) is not None]


def build_report(
    out_dir: str | Path,
    encoders: list[dict],
    *,
    title: str,
    intro: str = "",
    findings: Sequence[str] = (),
    settings: Sequence[str] = (),
    reproduce: Sequence[str] = (),
    class_names: Sequence[str] | None = None,
    kappa: float = 25.0,
) -> dict[str, Path]:
    """Write the figures and the report pages for a list of evaluated encoders.

    Args:
        out_dir: Output folder (created).
        encoders: One dict per encoder: ``"name"``; ``"eval"``, a
            ``alignuniform.evaluate.evaluate_encoder`` result; optional ``"epochs"`` (the
            run's ``epochs.jsonl`` rows, drawn as training curves, with the monitor's
            ``heldout_align``/``heldout_uniform`` drawn as plane trajectories); optional
            ``"points"`` (``(N, 2)`` test embeddings), ``"labels"`` and ``"pos_dist"``
            (distances of held-out positive pairs): the encoders that have them get a column
            of the S^1 figure; optional ``"train_s"``.
        title: Page title.
        intro: Opening paragraph(s).
        findings: Bullet points stating what the numbers show.
        settings: Bullet points stating how everything was run.
        reproduce: Shell commands that reproduce the page.
        class_names: Names of the labels for the S^1 figure.
        kappa: vMF concentration of the S^1 figure's angle KDEs.

    Returns:
        Paths by role: ``"html"``, ``"markdown"`` and one per figure written (``"s1"``,
        ``"plane"``, ``"curves"``).

    Raises:
        ValueError: If ``encoders`` is empty.
    """
    if not encoders:
        raise ValueError("build_report needs at least one evaluated encoder")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    sections = [Section("Summary", text=intro, bullets=list(findings)),
                Section("Results", text=(
                    "Accuracy on the test split of a linear probe and a 5-nearest-neighbour "
                    "classifier, on the output embedding (emb) and the penultimate layer "
                    "(pen). Alignment is measured on held-out positive pairs (two random views "
                    "of each test item), uniformity over all test embeddings, and the bound is "
                    "the lowest uniformity possible in that dimension. Lower alignment and "
                    "uniformity are better."), table=results_table(encoders))]
    spectral = spectral_table(encoders)
    if spectral is not None:
        sections.append(Section("Label-free metrics", text=(
            "Spectral metrics of the test embeddings (the output embedding), computed without "
            "labels: RankMe, effective and stable rank (higher: more dimensions used), "
            "alpha-ReQ (the eigenspectrum's decay exponent), the Gaussian W2 distance to the "
            "uniform sphere (lower is closer) and LiDAR (from the two views of each test "
            "item). `studies/` measures which of them predicts accuracy."), table=spectral))

    with_points = [enc for enc in encoders if enc.get("points") is not None
                   and np.asarray(enc["points"]).shape[-1] == 2 and enc.get("pos_dist") is not None]
    if with_points:
        s1_inputs = []
        for enc in with_points:
            emb = _layer(enc, "embedding")
            s1_inputs.append({
                "name": enc["name"], "points": enc["points"], "labels": enc.get("labels"),
                "pos_dist": enc["pos_dist"],
                "subtitle": f"linear acc {_fmt(emb.get('linear_acc'), '.1%')}",
            })
        written["s1"] = s1_figure(s1_inputs, out_dir / "s1.png", kappa=kappa,
                                  class_names=class_names)
        sections.append(Section(
            "Representations on the circle S^1 (Wang & Isola, Figure 3)",
            text=("One column per encoder with 2-d output. Top: distances between the "
                  "embeddings of held-out positive pairs, with their mean (alignment: further "
                  "left is better). Second row: the test embeddings on the circle under an "
                  "isotropic Gaussian KDE in R^2. Third: a von Mises-Fisher KDE of their "
                  f"angles (kappa = {kappa:g}); the dotted line is the uniform density "
                  "(uniformity: flatter is better). Bottom: the angle KDEs of a few classes."),
            figure=written["s1"], caption="Alignment and uniformity on S^1"))

    points, paths = [], {}
    for enc in encoders:
        emb = _layer(enc, "embedding")
        if emb.get("alignment") is None or emb.get("uniformity") is None:
            continue
        points.append({"name": enc["name"], "align": emb["alignment"],
                       "uniform": emb["uniformity"], "accuracy": emb.get("linear_acc")})
        traj = _trajectory(enc.get("epochs") or [])
        if len(traj) > 1:
            paths[enc["name"]] = traj
    if points:
        bounds = {_layer(e, "embedding").get("uniformity_bound") for e in encoders}
        bound = bounds.pop() if len(bounds) == 1 else None
        color_key = "accuracy" if all(p["accuracy"] is not None for p in points) else None
        written["plane"] = plane_figure(
            points, out_dir / "plane.png", bound=bound, color_key=color_key,
            label_fmt="{name}", paths=paths)
        sections.append(Section(
            "Alignment-uniformity plane (Wang & Isola, Figure 5 style)",
            text=("Each encoder is a point (held-out alignment, test uniformity of the output "
                  "embedding), coloured by linear-probe accuracy; lower-left is better. The "
                  "dashed line is the uniformity bound of the embedding dimension, and grey "
                  "lines trace the trained encoders epoch by epoch."),
            figure=written["plane"], caption="Alignment vs uniformity"))

    runs = {enc["name"]: enc["epochs"] for enc in encoders if enc.get("epochs")}
    if runs:
        written["curves"] = curves_figure(runs, out_dir / "curves.png")
        sections.append(Section(
            "Training curves",
            text=("Every loss term (mean over each epoch) and the training monitor's numbers "
                  "on held-out data: weighted k-NN accuracy (heldout_knn_acc), alignment "
                  "(heldout_align) and uniformity (heldout_uniform) of the output embedding."),
            figure=written["curves"], caption="Training curves per epoch"))

    if settings:
        sections.append(Section("Settings", bullets=list(settings)))
    if reproduce:
        sections.append(Section("Reproduce", bullets=[f"`{cmd}`" for cmd in reproduce]))
    written.update(write_page(out_dir, title, sections))
    return written
