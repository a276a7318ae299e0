"""A committed study: which label-free metric predicts accuracy, from its results table alone.

A study is a folder (under ``studies/`` in the repository) holding the sweep file that
trained its encoders, ``results.csv`` (the sweep's table: one row per encoder, every metric
and accuracy) and the ``analysis.json`` that :func:`analyze_study` makes from that table and
nothing else, so anyone can recompute every number from the committed text files. Each
metric of one layer (``embedding`` by default) is scored against each accuracy by
:func:`alignuniform.predictivity.predict_table`: Spearman and Kendall with bootstrap
intervals and permutation p-values, the selection regret, and the cross-validated
``a·align + b·unif`` fit; ``groups`` (a column of the table) adds the within-group view.

Examples:
    >>> rows = [{"status": "ok", "embedding.uniformity": -u, "embedding.linear_acc": u}
    ...         for u in (1.0, 2.0, 3.0, 4.0)]
    >>> study_rows(rows)[0]
    {'uniformity': -1.0, 'linear_acc': 1.0}
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from alignuniform.io import write_json
from alignuniform.predictivity import predict_table

__all__ = ["ACCURACIES", "DIRECTIONS", "FIT_ROW", "accuracy_columns", "analyze_study",
           "format_study", "read_results_csv", "study_folders", "study_rows", "study_settings",
           "with_fit_rows"]

#: Which values of each metric the field reads as better: they pick the encoder of the
#: selection regret (the correlations keep their sign). alpha-ReQ: lower, a slower decay of
#: the eigenspectrum (Agrawal et al. find accuracy best near 1, which lower covers for the
#: steep spectra of small encoders; its correlations are reported either way).
DIRECTIONS: dict[str, str] = {
    "alignment": "lower", "uniformity": "lower", "rankme": "higher",
    "effective_rank": "higher", "stable_rank": "higher", "alpha_req": "lower",
    "gaussian_w2": "lower", "lidar": "higher",
}

#: The accuracy columns of a sweep's table, analysed where the table has them.
ACCURACIES = ("linear_acc", "knn5_acc", "mean_acc")


def _value(text: str) -> object:
    if text == "":
        return None
    if text in ("True", "False"):  # how csv writes a bool (e.g. the sweep's collapsed)
        return text == "True"
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else None


def read_results_csv(path: str | Path) -> list[dict]:
    """The rows of a results table: numbers as floats, ``True``/``False`` as bools, empty
    cells as ``None``, anything else as text."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def column(layer: str | None, name: str) -> str:
    """``layer.name``, or ``name`` for a table whose columns carry no layer (``None``)."""
    return name if layer is None else f"{layer}.{name}"


def study_rows(rows: Sequence[Mapping], layer: str | None = "embedding",
               groups: str | None = None,
               accuracies: Sequence[str] | Mapping[str, str | None] = ACCURACIES
               ) -> list[dict]:
    """The finished encoders' metrics and accuracies of ``layer``, named without the layer
    prefix (so that studies compare metric by metric), plus the ``groups`` column. A row
    without a ``status`` (a table that is not a sweep's) counts as finished.

    ``accuracies`` maps a name to the full column it is read from (``None``: the name in
    ``layer``), e.g. ``{"miou_multi": "dense.multi.backbone.miou"}`` for a dense study's
    scene mIoU, which belongs to no layer; a plain sequence of names reads each in ``layer``.
    """
    sources = accuracy_columns(layer, accuracies)
    sources = {**{name: column(layer, name) for name in DIRECTIONS}, **sources}
    out = []
    for row in rows:
        if row.get("status", "ok") != "ok":
            continue
        kept = {name: row[col] for name, col in sources.items() if col in row}
        if groups is not None:
            kept[groups] = row.get(groups)
        out.append(kept)
    return out


def accuracy_columns(layer: str | None,
                     accuracies: Sequence[str] | Mapping[str, str | None]) -> dict[str, str]:
    """``{accuracy name: the table column it is read from}`` (see :func:`study_rows`)."""
    given = accuracies if isinstance(accuracies, Mapping) else dict.fromkeys(accuracies)
    return {name: col or column(layer, name) for name, col in given.items()}


def _accuracy_settings(path: Path, given: object) -> dict[str, str | None]:
    """``study.yaml``'s ``accuracies``: names, or one-key mappings ``{name: column}``."""
    out: dict[str, str | None] = {}
    for item in given if isinstance(given, list) else [given]:
        if isinstance(item, str):
            out[item] = None
        elif (isinstance(item, dict) and len(item) == 1
              and all(isinstance(v, str) for v in (*item, *item.values()))):
            out.update(item)
        else:
            raise ValueError(f"{path}: accuracies is a list of names or of one-key mappings "
                             f"{{name: column}}, got {item!r}")
    return out


def study_settings(folder: Path) -> dict:
    """The study's ``layer`` (``null``: columns without a layer prefix), ``groups`` and
    ``accuracies`` (``{name: column or None}``, see :func:`study_rows`) from its optional
    ``study.yaml`` (defaults: ``embedding``, no groups, :data:`ACCURACIES`)."""
    import yaml

    path = folder / "study.yaml"
    settings: dict = {"layer": "embedding", "groups": None, "accuracies": list(ACCURACIES)}
    if path.is_file():
        given = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        unknown = set(given) - set(settings)
        if not isinstance(given, dict) or unknown:
            raise ValueError(f"{path}: only the keys layer, groups and accuracies are read, got "
                             f"{sorted(unknown) if isinstance(given, dict) else given!r}")
        settings.update(given)
    settings["accuracies"] = _accuracy_settings(path, settings["accuracies"])
    return settings


def analyze_study(folder: str | Path, *, layer: str | None = None,
                  groups: str | None = None,
                  n_boot: int = 1000, n_perm: int = 999, seed: int = 0) -> dict:
    """Analyse ``folder/results.csv`` and write ``folder/analysis.json``.

    ``layer`` and ``groups`` default to the folder's ``study.yaml`` (:func:`study_settings`);
    with ``groups`` (e.g. ``model.feat_dim``: RankMe is bounded by the dimension, so
    encoders of different widths are compared within their group too), each metric also gets
    its within-group correlations and the fit is leave-one-group-out.

    Returns:
        ``{"study", "layer", "groups", "n_rows", "columns", "table"}`` (``columns``: the
        table column of each metric and accuracy; ``"within"`` with groups):
        ``predict_table``'s results over the metrics and accuracies the table has, across
        all finished encoders with the leave-one-out ``a·align + b·unif`` fit, and with
        ``groups`` (within-group correlations, per-group regret).

    Raises:
        FileNotFoundError: ``folder`` has no ``results.csv``.
        ValueError: the table has no finished encoder with a metric and an accuracy.
    """
    folder = Path(folder)
    settings = study_settings(folder)
    layer = layer or settings["layer"]
    groups = groups or settings["groups"]
    wanted = settings["accuracies"]
    path = folder / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no results.csv in {folder}: a study folder holds the "
                                "sweep's table (copy it from the sweep's --out folder)")
    raw = read_results_csv(path)
    rows = study_rows(raw, layer, groups, wanted)
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    metrics = {m: d for m, d in DIRECTIONS.items() if m in present}
    accuracies = [a for a in wanted if a in present]
    if not metrics or not accuracies:
        first = accuracy_columns(layer, wanted)[next(iter(wanted))]
        raise ValueError(f"{path}: no finished encoder with metrics and accuracies (columns "
                         f"like {column(layer, 'uniformity')} and {first})")
    # across all encoders, with the leave-one-out fit; within groups separately, since a
    # leave-one-group-out fit over a few groups (two widths) has too little to fit on
    table = predict_table(rows, metrics, accuracies, n_boot=n_boot, n_perm=n_perm, seed=seed)
    sources = accuracy_columns(layer, wanted)
    result = {"study": folder.name, "layer": layer, "groups": groups, "n_rows": len(raw),
              "columns": {**{m: column(layer, m) for m in metrics},
                          **{a: sources[a] for a in accuracies}},
              "table": table}
    if groups is not None:
        result["within"] = predict_table(rows, metrics, accuracies, groups=groups, fit=None,
                                         n_boot=n_boot, n_perm=n_perm, seed=seed)
    write_json(folder / "analysis.json", result)
    return result


def study_folders(root: str | Path) -> list[Path]:
    """``root`` itself when it holds a ``results.csv``, else its subfolders that do."""
    root = Path(root)
    if (root / "results.csv").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/results.csv"))
    if not found:
        raise FileNotFoundError(f"no study in {root}: neither {root}/results.csv nor "
                                f"{root}/*/results.csv")
    return found


def format_study(result: Mapping, accuracy: str = "linear_acc") -> str:
    """One line per metric: Kendall's tau with ``accuracy``, its 95% interval, the
    permutation p-value and the regret (what ``sweep study`` prints)."""
    entry = result["table"]["accuracies"].get(accuracy)
    if entry is None:
        return f"{result['study']}: no {accuracy} column"

    def num(value: object, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, (int, float)) else "n/a"

    groups = result.get("groups")
    within = f" {'within ' + groups:>24} {'perm p':>7}" if groups else ""
    layer = result["layer"] or "as given"
    lines = [f"{result['study']} ({result['table']['n_encoders']} encoders, {layer}, "
             f"{accuracy}; Kendall's tau):",
             f"  {'metric':<21} {'tau':>6}  {'95% interval':<16} {'perm p':>7} {'regret':>7}"
             + within]
    for name, cell in entry["metrics"].items():
        k = cell.get("kendall") or {}
        regret = (cell.get("regret") or {}).get("mean")  # across: the one best encoder
        interval = f"[{num(k.get('low'), '+.2f')}, {num(k.get('high'), '+.2f')}]"
        line = (f"  {name:<21} {num(k.get('value'), '+.2f'):>6}  {interval:<16} "
                f"{num(k.get('p_value'), '.3f'):>7} {num(regret, '.3f'):>7}")
        if groups:
            inner = result["within"]["accuracies"][accuracy]["metrics"].get(name, {})
            w = (inner.get("within") or {}).get("kendall") or {}
            line += f" {num(w.get('value'), '+.2f'):>24} {num(w.get('p_value'), '.3f'):>7}"
        lines.append(line)
    fit = (entry.get("fit") or {}).get("kendall") or {}
    if fit:
        interval = f"[{num(fit.get('low'), '+.2f')}, {num(fit.get('high'), '+.2f')}]"
        lines.append(f"  {FIT_ROW:<21} {num(fit.get('value'), '+.2f'):>6}  {interval:<16} "
                     f"{num(fit.get('p_value'), '.3f'):>7}")
    return "\n".join(lines)


FIT_ROW = "a·align+b·unif (LOO)"
"""The heat maps' name for the cross-validated ``a·align + b·unif`` score."""


def with_fit_rows(table: Mapping) -> dict:
    """``table`` with the cross-validated fit as one more metric of each accuracy (under
    :data:`FIT_ROW`), so a heat map shows it beside the single metrics."""
    accuracies = {}
    for acc, entry in table["accuracies"].items():
        metrics = dict(entry["metrics"])
        if entry.get("fit"):
            metrics[FIT_ROW] = {"kendall": entry["fit"]["kendall"]}
        accuracies[acc] = {**entry, "metrics": metrics}
    return {**table, "accuracies": accuracies}
