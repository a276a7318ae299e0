"""The page of a sweep: ``DIR/report.html`` (self-contained) and ``DIR/report.md``.

Built from what the sweep wrote (``sweep.json``, ``results.jsonl``, ``analysis.json``):
the correlation table, the fitted combination, Figures 5, 6 and 7, the best trials and the
failures. Where the rows have the label-free spectral metrics (RankMe, ranks, alpha-ReQ, W2,
LiDAR), the correlation tables and the best trials carry them as further columns; a sweep
from before them gives the same page as then.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from alignuniform.io import read_json, read_jsonl
from alignuniform.report.augment_grid import (
    AUGMENT_KEY,
    augment_grid,
    augment_grid_figure,
    augment_label,
    augment_table,
)
from alignuniform.report.page import Section, Table, write_page
from alignuniform.report.sweep_figures import metric_figure, plane_figure, ratio_figure
from alignuniform.sweep.spec import grid_keys

# headings of the spectral metrics, in the order of the sweep rows' columns
_SPECTRAL_HEADS = {"rankme": "RankMe", "effective_rank": "eff. rank",
                   "stable_rank": "stable rank", "alpha_req": "alpha-ReQ",
                   "gaussian_w2": "W2 unif.", "lidar": "LiDAR"}
# loss/model settings every figure needs, taken from each trial's config when not varied
_CONFIG_COLUMNS = ("loss.w_contrastive", "loss.w_align", "loss.w_uniform", "loss.alpha",
                   "loss.t", "loss.tau", "model.feat_dim")


def _lookup(config: dict, key: str) -> object:
    node: object = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def enrich_rows(rows: list[dict], meta: dict) -> list[dict]:
    """Rows with the loss weights and output dimension filled in from the trials' configs."""
    configs = {t["id"]: t["config"] for t in meta.get("trial_list") or []}
    out = []
    for row in rows:
        row = dict(row)
        for key in _CONFIG_COLUMNS:
            if key not in row and row.get("id") in configs:
                row[key] = _lookup(configs[row["id"]], key)
        out.append(row)
    return out


def _ci(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "n/a"
    if entry.get("low") is None:
        return f"{entry['value']:+.2f}"
    return f"{entry['value']:+.2f} [{entry['low']:+.2f}, {entry['high']:+.2f}]"


def _num(value: object, fmt: str = ".3f") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return format(value, fmt)
    return "n/a"


def _varies_views(analysis: dict) -> bool:
    """Whether the analysis has blocks on the full recipe's positives (an augment sweep);
    only then do the tables carry a positives column."""
    return any(e.get("views", "own") != "own" for e in analysis["results"])


def _key(r: dict, views: bool) -> list[str]:
    return [r["subset"], r["layer"], r["accuracy"], *([r.get("views", "own")] if views else []),
            str(r["n"])]


def _key_columns(views: bool) -> list[str]:
    return ["subset", "layer", "accuracy", *(["positives"] if views else []), "n"]


def _spectral_metrics(analysis: dict) -> list[str]:
    """The spectral metrics some block of the analysis correlates, in column order."""
    found = {m for r in analysis["results"] for m in r.get("spectral") or {}}
    return [m for m in _SPECTRAL_HEADS if m in found]


def _spectral_ci(r: dict, metric: str, stat: str) -> str:
    entry = (r.get("spectral") or {}).get(metric) or {}
    text = _ci(entry.get(stat))
    n = entry.get("n")
    return text if n is None or n == r["n"] or text == "n/a" else f"{text} (n = {n})"


def _correlation_table(analysis: dict, stat: str) -> Table:
    rows, views = [], _varies_views(analysis)
    spectral = _spectral_metrics(analysis)
    for r in analysis["results"]:
        if r["n"] < 4:
            continue
        rows.append([*_key(r, views),
                     _ci((r.get("alignment") or {}).get(stat)),
                     _ci((r.get("uniformity") or {}).get(stat)),
                     _ci((r.get("combined") or {}).get(stat)),
                     *(_spectral_ci(r, m, stat) for m in spectral)])
    return Table([*_key_columns(views), "vs alignment", "vs uniformity",
                  "vs fitted a·align+b·unif (LOO)",
                  *(f"vs {_SPECTRAL_HEADS[m]}" for m in spectral)], rows)


def _fit_table(analysis: dict) -> Table:
    rows, views = [], _varies_views(analysis)
    for r in analysis["results"]:
        comb = r.get("combined") or {}
        if r["n"] < 4 or comb.get("a") is None:
            continue
        rows.append([*_key(r, views), _num(comb["a"]),
                     _num(comb["b"]), _num(comb["intercept"]), _num(comb.get("r2"), ".2f"),
                     _num(comb.get("loo_r2"), ".2f")])
    return Table([*_key_columns(views), "a (align)", "b (unif)", "intercept", "R²",
                  "LOO R²"], rows)


def _setting(value: object, key: str) -> str:
    if isinstance(value, str):
        return value
    if key == AUGMENT_KEY and isinstance(value, dict):
        return augment_label(value)
    if isinstance(value, (dict, list)):  # any other structured setting, as the sweep file has it
        return json.dumps(value, separators=(",", ":"))
    return _num(value, "g")


def _top_table(rows: list[dict], varying: list[str], n: int) -> Table:
    ok = [r for r in rows if r.get("status") == "ok"
          and isinstance(r.get("embedding.linear_acc"), (int, float))]
    ok.sort(key=lambda r: -r["embedding.linear_acc"])
    spectral = [m for m in _SPECTRAL_HEADS
                if any(isinstance(r.get(f"embedding.{m}"), (int, float)) for r in ok)]
    cols = ["rank", "trial", *varying, "linear (emb)", "5-NN (emb)", "mean clf (emb)",
            "linear (pen)", "align", "uniform", *(_SPECTRAL_HEADS[m] for m in spectral),
            "collapsed"]
    body = []
    for i, r in enumerate(ok[:n], start=1):
        body.append([str(i), r["id"], *[_setting(r.get(k), k) for k in varying],
                     _num(r.get("embedding.linear_acc"), ".1%"),
                     _num(r.get("embedding.knn5_acc"), ".1%"),
                     _num(r.get("embedding.mean_acc"), ".1%"),
                     _num(r.get("penultimate.linear_acc"), ".1%"),
                     _num(r.get("embedding.alignment")), _num(r.get("embedding.uniformity")),
                     *(_num(r.get(f"embedding.{m}")) for m in spectral),
                     "yes" if r.get("collapsed") else "no"])
    return Table(cols, body)


def _augment_sections(rows: list[dict], out_dir: Path, layer: str) -> list[Section]:
    sections = []
    if augment_grid(rows, f"{layer}.linear_acc").labels:  # else only recipe variants: no grid
        figure = augment_grid_figure(rows, out_dir / "augment_grid.png", layer=layer)
        sections.append(Section(
            "Which augmentations make good positives", figure=figure,
            caption="A single transformation on the diagonal, a pair off it (colour = colour "
                    "jitter + colour drop), each cell the mean of its trials (seeds); "
                    "alignment under the full recipe's views compares every encoder on the "
                    "same positives."))
    return [
        *sections,
        Section("Every augmentation recipe",
                "Mean over each recipe's finished trials, ± their standard deviation.",
                table=augment_table(rows, layer=layer)),
    ]


def build_sweep_report(out_dir: str | Path, *, layer: str = "embedding",
                       accuracy: str = "linear_acc") -> dict[str, Path]:
    """Write the sweep's figures and ``report.html``/``report.md`` into ``out_dir``.

    Raises:
        FileNotFoundError: ``out_dir`` lacks ``sweep.json``, ``results.jsonl`` or
            ``analysis.json`` (run ``alignuniform sweep analyze DIR``).
    """
    out_dir = Path(out_dir)
    meta = read_json(out_dir / "sweep.json")
    analysis = read_json(out_dir / "analysis.json")
    rows = enrich_rows(read_jsonl(out_dir / "results.jsonl"), meta)
    varying = grid_keys(meta.get("grid") or {}) + list(meta.get("random") or {})
    top = int((meta.get("analysis") or {}).get("top", 10))
    figs = {
        "plane": plane_figure(rows, out_dir / "fig5_plane.png", layer=layer, accuracy=accuracy),
        "metrics": metric_figure(rows, out_dir / "fig6_metrics.png", layer=layer,
                                 accuracy=accuracy),
        "ratio": ratio_figure(rows, out_dir / "fig7_ratio.png", layer=layer,
                              accuracy=accuracy),
    }
    n_planned = analysis.get("n_planned") or len(meta.get("trial_list") or [])
    partial = (" (PARTIAL: the sweep has not finished; rerun its command to resume)"
               if analysis["n_trials"] < n_planned else "")
    summary = (
        f"{analysis['n_trials']} of {n_planned} trials finished{partial}"
        f": {analysis['n_ok']} evaluated, {analysis['n_failed']} failed, "
        f"{analysis['n_collapsed']} collapsed (embedding uniformity above "
        f"{analysis['collapse_fraction']} x its bound). Sweep file `{meta.get('path')}`, base "
        f"config `{meta.get('base')}`, seed {meta.get('seed')}; varied: "
        f"{', '.join(f'`{k}`' for k in varying)}."
    )
    env = meta.get("environment") or {}
    sections = [
        Section("Summary", summary + "\n\n" + (
            "Each trial trains one encoder and evaluates it on held-out data: linear probe "
            "and 5-NN accuracy, alignment (alpha = 2, two seeded views of each held-out item) "
            "and uniformity (t = 2, exact over the held-out embeddings), on the output "
            "embedding and the penultimate layer. "
            f"Environment: torch {env.get('torch')}, {env.get('cpu_count')} CPUs"
            f"{', CUDA' if env.get('cuda') else ''}.")),
        Section("Spearman correlation of accuracy with each metric",
                "Spearman's rho with 95% bootstrap intervals "
                f"({analysis['bootstrap']} resamples). Lower alignment and uniformity are "
                "better, so a predictive metric has a negative rho; the fitted combination "
                "predicts accuracy, so its rho is positive. The fit's column uses its "
                "leave-one-out predictions." + (
                    " Positives `own`: alignment on each encoder's own training views; "
                    "`full`: on the full recipe's views, the same positives for every "
                    "encoder." if _varies_views(analysis) else ""),
                table=_correlation_table(analysis, "spearman")),
        Section("Kendall correlation", "Kendall's tau-b, same layout.",
                table=_correlation_table(analysis, "kendall")),
        Section("Fitted combination accuracy ≈ a·align + b·unif + c",
                "Least squares per subset; LOO R² is the leave-one-out (PRESS) R², the "
                "honest measure of how well the two metrics predict accuracy.",
                table=_fit_table(analysis)),
        Section("The alignment-uniformity plane (Figure 5)", figure=figs["plane"],
                caption=f"Held-out metrics of the {layer}, colour = {accuracy}; one panel "
                        "per output dimension, dashed line = the uniformity bound."),
        Section("Accuracy against each metric (Figure 6)", figure=figs["metrics"],
                caption="Hollow markers: collapsed encoders."),
        Section("Accuracy against w_align / w_uniform (Figure 7)", figure=figs["ratio"],
                caption="Encoders trained with both L_align and L_uniform; red crosses: "
                        "collapsed."),
        Section(f"Top {top} trials by linear accuracy of the embedding",
                table=_top_table(rows, varying, top)),
    ]
    if AUGMENT_KEY in varying:
        sections += _augment_sections(rows, out_dir, layer)
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        sections.append(Section(
            "Failed trials", bullets=[f"`{r['id']}` ({r['name']}): {r.get('error')}"
                                      for r in failed]))
    return write_page(out_dir, f"Sweep: {Path(str(meta.get('path'))).name}", sections)
