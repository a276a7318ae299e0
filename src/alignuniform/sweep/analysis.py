"""How well do alignment and uniformity predict downstream accuracy across a sweep?

For every accuracy column (linear probe, 5-NN and the mean classifier, on each evaluated
layer) and that layer's held-out alignment and uniformity:

- Spearman's rho and Kendall's tau-b of accuracy against alignment, against uniformity,
  and against a fitted combination ``a·align + b·unif + c`` (least squares on accuracy);
  for the combination the correlation is of its *leave-one-out* predictions, so the fit
  does not flatter itself;
- 95% percentile bootstrap intervals (rows resampled with replacement, seeded);
- the combination's coefficients, in-sample R² and leave-one-out R² (PRESS: 1 − Σ(loo
  residual)² / Σ(acc − mean)²);

over all finished trials, over the non-collapsed ones (see ``is_collapsed``), and, when the
sweep varies the output dimension (uniformity's scale depends on it), per dimension.
Numbers that cannot be computed (fewer than 4 rows, a constant column) are ``None``.

Where the rows have them, the label-free spectral metrics of the layer
(``SPECTRAL_COLUMNS``: RankMe, effective and stable rank, alpha-ReQ, W2 uniformity, LiDAR)
are analysed the same way: Spearman and Kendall against each accuracy with bootstrap
intervals, over the rows that have the metric (a metric undefined for a trial leaves that
trial out of its ``n``). Their resamples come from a generator of their own, so a table
without these columns is analysed exactly as before they existed, draw for draw.

Alignment is measured on positive pairs from each encoder's own training recipe
(``views: "own"``). When a sweep varies the augmentation, those positives differ from trial
to trial (with no augmentation alignment is 0 whatever the encoder), so every block is also
computed with the alignment of positives from the full recipe, one yardstick for all
(``alignment_full``; ``views: "full"``).

The statistics (rank correlations, the fit and its leave-one-out predictions) are
:mod:`alignuniform.predictivity`'s; this module picks the columns and subsets of a sweep's
table and writes them up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alignuniform.io import read_json, read_jsonl, write_json
from alignuniform.predictivity import finite_or_none, fit_combination, rank_correlations
from alignuniform.sweep.spec import LAYERS
from alignuniform.sweep.trial import SPECTRAL_COLUMNS, is_collapsed

ACCURACIES = ("linear_acc", "knn5_acc", "mean_acc")  # mean_acc where the rows have it
PREDICTORS = ("alignment", "uniformity", "combined")
# the alignment column each kind of positive pairs reads
VIEWS = {"own": "alignment", "full": "alignment_full"}
MIN_ROWS = 4
MIN_FIT_ROWS = 6  # three coefficients: fewer rows leave no degrees of freedom to judge


def _spectral_block(rows: list[dict], layer: str, acc_name: str, metrics: list[str],
                    bootstrap: int, rng: np.random.Generator) -> dict:
    """Rank correlations of accuracy against each spectral metric, ``{metric: {"n",
    "spearman", "kendall"}}``, each over the rows that have both numbers."""
    out: dict = {}
    for metric in metrics:
        cols = [f"{layer}.{metric}", f"{layer}.{acc_name}"]
        usable = [r for r in rows if all(_is_number(r.get(c)) for c in cols)]
        n = len(usable)
        if n < MIN_ROWS:
            out[metric] = {"n": n, "spearman": None, "kendall": None,
                           "note": f"fewer than {MIN_ROWS} rows"}
            continue
        x, acc = (np.array([r[c] for r in usable], dtype=np.float64) for c in cols)
        idx = rng.integers(0, n, size=(bootstrap, n)) if bootstrap else None
        out[metric] = {"n": n, **rank_correlations(x, acc, idx)}
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _block(rows: list[dict], layer: str, acc_name: str, bootstrap: int,
           rng: np.random.Generator, views: str = "own") -> dict:
    cols = [f"{layer}.{VIEWS[views]}", f"{layer}.uniformity", f"{layer}.{acc_name}"]
    usable = [r for r in rows if all(isinstance(r.get(c), (int, float)) for c in cols)]
    n = len(usable)
    out: dict = {"n": n}
    if n < MIN_ROWS:
        out.update({p: None for p in PREDICTORS})
        out["note"] = f"fewer than {MIN_ROWS} rows"
        return out
    align, unif, acc = (np.array([r[c] for r in usable], dtype=np.float64) for c in cols)
    idx = rng.integers(0, n, size=(bootstrap, n)) if bootstrap else None
    out["alignment"] = rank_correlations(align, acc, idx)
    out["uniformity"] = rank_correlations(unif, acc, idx)
    if n < MIN_FIT_ROWS:
        out["combined"] = None
        out["note"] = f"fewer than {MIN_FIT_ROWS} rows for the fitted combination"
        return out
    fit = fit_combination(align, unif, acc)
    pred = fit.pop("loo_pred")
    combined = rank_correlations(pred, acc, idx) if np.isfinite(pred).all() else {
        "spearman": None, "kendall": None}
    combined.update({k: finite_or_none(v) for k, v in fit.items()})
    out["combined"] = combined
    return out


def _subsets(rows: list[dict], fraction: float) -> dict[str, list[dict]]:
    ok = [r for r in rows if r.get("status") == "ok"]
    subsets = {"all": ok,
               "non_collapsed": [r for r in ok if is_collapsed(r, fraction) is False]}
    dims = sorted({r["model.feat_dim"] for r in ok if r.get("model.feat_dim") is not None})
    if len(dims) > 1:
        for d in dims:
            subsets[f"feat_dim={d}"] = [r for r in ok if r.get("model.feat_dim") == d]
    return subsets


def _views(rows: list[dict], layers: tuple[str, ...]) -> list[str]:
    """``["own", "full"]`` when some trial's positives differ from the full recipe's."""
    differs = any(isinstance(r.get(f"{layer}.alignment_full"), (int, float))
                  and r.get(f"{layer}.alignment_full") != r.get(f"{layer}.alignment")
                  for r in rows for layer in layers)
    return ["own", "full"] if differs else ["own"]


def _accuracies(rows: list[dict], layers: tuple[str, ...]) -> list[str]:
    """The accuracy columns some finished trial has (tables written before the mean
    classifier have no ``mean_acc``)."""
    return [a for a in ACCURACIES
            if any(isinstance(r.get(f"{layer}.{a}"), (int, float)) for r in rows
                   for layer in layers)]


def _spectral_metrics(rows: list[dict], layer: str) -> list[str]:
    """The spectral metrics some finished trial has a number for on ``layer``."""
    return [m for m in SPECTRAL_COLUMNS if any(_is_number(r.get(f"{layer}.{m}")) for r in rows)]


def analyze_rows(rows: list[dict], *, collapse_fraction: float = 0.2, bootstrap: int = 1000,
                 seed: int = 0, layers: tuple[str, ...] = LAYERS) -> dict:
    """The correlations of a sweep's table (rows as in ``results.jsonl``).

    Returns:
        ``{"n_trials", "n_ok", "n_failed", "n_collapsed", "collapse_fraction",
        "bootstrap", "seed", "results": [{"layer", "accuracy", "subset", "views", "n",
        "alignment", "uniformity", "combined"}, ...]}``; ``views`` is "own", plus "full"
        blocks when a trial's positives differ from the full recipe's; each predictor holds
        ``spearman`` and ``kendall`` as ``{"value", "low", "high"}``, and ``combined``
        also ``a``, ``b``, ``intercept``, ``r2``, ``loo_r2``. Where the rows have spectral
        metrics, the "own" blocks also hold ``"spectral": {metric: {"n", "spearman",
        "kendall"}}`` (they do not depend on the positives).
    """
    rng = np.random.default_rng(seed)
    spectral_rng = np.random.default_rng([seed, 1])  # leaves rng's draws as they were
    ok = [r for r in rows if r.get("status") == "ok"]
    spectral = {layer: _spectral_metrics(ok, layer) for layer in layers}
    results = []
    for views in _views(ok, layers):
        for subset, members in _subsets(rows, collapse_fraction).items():
            for layer in layers:
                for acc_name in _accuracies(ok, layers):
                    block = _block(members, layer, acc_name, bootstrap, rng, views)
                    if views == "own" and spectral[layer]:
                        block["spectral"] = _spectral_block(
                            members, layer, acc_name, spectral[layer], bootstrap, spectral_rng)
                    results.append({"layer": layer, "accuracy": acc_name, "subset": subset,
                                    "views": views, **block})
    return {
        "n_trials": len(rows), "n_ok": len(ok),
        "n_failed": len(rows) - len(ok),
        "n_collapsed": sum(bool(is_collapsed(r, collapse_fraction)) for r in ok),
        "collapse_fraction": collapse_fraction, "bootstrap": bootstrap, "seed": seed,
        "results": results,
    }


def analyze_sweep(out_dir: str | Path, *, bootstrap: int | None = None, seed: int = 0) -> dict:
    """Analyse the sweep in ``out_dir`` (its ``results.jsonl``) and write ``analysis.json``.

    Args:
        out_dir: A sweep folder written by :func:`alignuniform.sweep.run_sweep`.
        bootstrap: Resamples of the intervals (default: the sweep file's ``analysis``).
        seed: Seed of the bootstrap.

    With a dense evaluation (``evaluate.dense``), ``analysis["dense_au_correlation"]`` also
    holds ``evaluate.dense_checkpoint_eval.au_correlation_table`` for each subset of trials.

    Raises:
        FileNotFoundError: ``out_dir`` holds no sweep (no ``sweep.json`` or results).
    """
    out_dir = Path(out_dir)
    if not (out_dir / "sweep.json").is_file():
        raise FileNotFoundError(f"{out_dir} holds no sweep (no sweep.json); run "
                                "'alignuniform sweep SWEEP.yaml --out DIR' first")
    meta = read_json(out_dir / "sweep.json")
    settings = meta.get("analysis") or {}
    rows = read_jsonl(out_dir / "results.jsonl") if (out_dir / "results.jsonl").is_file() \
        else []
    layers = tuple((meta.get("evaluate") or {}).get("layers") or LAYERS)
    analysis = analyze_rows(
        rows, collapse_fraction=settings.get("collapse_fraction", 0.2),
        bootstrap=settings.get("bootstrap", 1000) if bootstrap is None else bootstrap,
        seed=seed, layers=layers)
    analysis["n_planned"] = len(meta.get("trial_list") or [])
    analysis["sweep"] = meta.get("path")
    if (meta.get("evaluate") or {}).get("dense") is not None:
        from alignuniform.evaluate.dense_checkpoint_eval import au_correlation_table

        fraction = settings.get("collapse_fraction", 0.2)
        analysis["dense_au_correlation"] = {
            name: au_correlation_table(members, n_boot=analysis["bootstrap"], seed=seed)
            for name, members in _subsets(rows, fraction).items()}
    write_json(out_dir / "analysis.json", analysis)
    return analysis


def format_table(analysis: dict, subsets: tuple[str, ...] | None = None) -> str:
    """The analysis as a fixed-width text table (what ``sweep analyze`` prints)."""

    def cell(entry: dict | None, stat: str) -> str:
        e = (entry or {}).get(stat) if entry else None
        if not e or e.get("value") is None:
            return "n/a"
        if e.get("low") is None:
            return f"{e['value']:+.2f}"
        return f"{e['value']:+.2f} [{e['low']:+.2f},{e['high']:+.2f}]"

    # the positives' column only where a sweep varies them (an augmentation sweep)
    views = any(r.get("views", "own") != "own" for r in analysis["results"])
    head = (f"{'subset':<14} {'layer':<11} {'accuracy':<10} " + ("views " if views else "")
            + f"{'n':>4}  "
            f"{'rho(align)':<20} {'rho(unif)':<20} {'rho(fit)':<20} "
            f"{'tau(align)':<20} {'tau(unif)':<20} {'tau(fit)':<20} {'LOO R2':>7}")
    lines = [head, "-" * len(head)]
    for r in analysis["results"]:
        if subsets and r["subset"] not in subsets:
            continue
        comb = r.get("combined") or {}
        loo = comb.get("loo_r2")
        lines.append(
            f"{r['subset']:<14} {r['layer']:<11} {r['accuracy']:<10} "
            + (f"{r.get('views', 'own'):<5} " if views else "") + f"{r['n']:>4}  "
            + " ".join(f"{cell(r.get(p), s):<20}" for s in ("spearman", "kendall")
                       for p in PREDICTORS)
            + f" {('n/a' if loo is None else f'{loo:.2f}'):>7}")
    lines += _spectral_table(analysis, subsets, cell)
    return "\n".join(lines)


def _spectral_table(analysis: dict, subsets: tuple[str, ...] | None, cell) -> list[str]:
    """The spectral metrics' correlations, a second table (none when no block has them)."""
    blocks = [r for r in analysis["results"] if r.get("spectral")
              and (not subsets or r["subset"] in subsets)]
    if not blocks:
        return []
    metrics = list(dict.fromkeys(m for r in blocks for m in r["spectral"]))
    head = (f"{'subset':<14} {'layer':<11} {'accuracy':<10} "
            + " ".join(f"{f'{s}({m})':<22}" for s in ("rho", "tau") for m in metrics))
    lines = ["", head, "-" * len(head)]
    for r in blocks:
        lines.append(
            f"{r['subset']:<14} {r['layer']:<11} {r['accuracy']:<10} "
            + " ".join(f"{cell(r['spectral'].get(m), s):<22}" for s in ("spearman", "kendall")
                       for m in metrics))
    return lines
