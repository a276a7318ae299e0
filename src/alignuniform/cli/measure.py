"""``alignuniform measure EMB``: alignment, uniformity, its bound, the spectral metrics and
5-NN of an embedding file.

Prints one line per number and writes ``measure.json`` and ``measure.png`` to ``--out``.
The numbers come from :func:`alignuniform.evaluate.measure_files`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alignuniform.cli._options import add_common_options

# the library's thresholds (evaluate.measurement), written out so that building the parser
# does not import the evaluate package (torchvision, scikit-learn);
# a test checks that they agree
EXACT_MAX_ROWS, DEFAULT_SAMPLE_PAIRS, KNN_MAX_QUERIES = 100_000, 1_000_000, 10_000


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "measure",
        help="alignment, uniformity and 5-NN accuracy of an embedding file",
        description=(
            "Measure the embeddings in a file the way Wang & Isola (2020) do: alignment over "
            "positive pairs (--second or --pairs), uniformity with the bound it can reach, and "
            "leave-one-out 5-NN accuracy (--labels); beside them the label-free spectral "
            "metrics RankMe, effective and stable rank, alpha-ReQ, the Gaussian W2 "
            "uniformity, and LiDAR of augmented views (--views). Reads .npy (memory-mapped "
            "and streamed), .npz, .pt/.pth, .safetensors, .parquet (a list column or all "
            "numeric columns), "
            f".csv and .tsv. Uniformity is exact up to {EXACT_MAX_ROWS:,} rows and estimated "
            f"from {DEFAULT_SAMPLE_PAIRS:,} sampled pairs with a 95% interval beyond (or "
            f"always with --sample N); 5-NN uses at most {KNN_MAX_QUERIES:,} seeded queries. "
            "Writes measure.json and measure.png to --out."
        ),
    )
    p.add_argument("emb", type=Path, metavar="EMB", help="(N, d) embeddings")
    pos = p.add_mutually_exclusive_group()
    pos.add_argument("--second", type=Path, metavar="EMB2",
                     help="(N, d) embeddings; row i is the positive of row i of EMB")
    pos.add_argument("--pairs", type=Path, metavar="PAIRS",
                     help="(K, 2) integer row indices into EMB: one positive pair per row")
    p.add_argument("--labels", type=Path, metavar="LABELS",
                   help="one integer class label per row of EMB (for leave-one-out 5-NN)")
    p.add_argument("--views", type=Path, metavar="VIEWS",
                   help="(n, q, d) embeddings: q >= 2 augmented views of each of n samples "
                        "(.npy, .npz, .pt, .safetensors), for LiDAR")
    p.add_argument("--key", metavar="NAME",
                   help="entry of EMB and EMB2 in .npz/.pt/.safetensors files, or parquet column")
    p.add_argument("--pairs-key", metavar="NAME", help="entry of the PAIRS file")
    p.add_argument("--labels-key", metavar="NAME", help="entry (or column) of the LABELS file")
    p.add_argument("--views-key", metavar="NAME", help="entry of the VIEWS file")
    p.add_argument("--t", type=float, default=2.0, help="uniformity kernel scale (default 2)")
    p.add_argument("--alpha", type=float, default=2.0, help="alignment exponent (default 2)")
    p.add_argument("--sample", type=int, metavar="N",
                   help="estimate uniformity from N sampled pairs whatever the size")
    p.add_argument("--no-normalize", action="store_true",
                   help="measure the rows as given instead of L2-normalising them")
    add_common_options(p, out_help="output folder", out_default=Path("runs/measure"),
                       seed_help="seeds the pair sampler, the 5-NN queries and the figure")
    p.set_defaults(func=run)


def format_lines(m, source: str) -> list[str]:
    """The printed lines of a :class:`~alignuniform.evaluate.measurement.Measurement`."""
    s = m.summary
    norm = "L2-normalised" if s["normalized"] else "as given (not normalised)"
    lines = [f"{source}: {s['n']:,} rows x {s['dim']} dims, {norm}"]
    lines += m.notes
    if s["alignment"] is None:
        lines.append("alignment         -  (no positives: pass --second or --pairs)")
    else:
        lines.append(f"alignment         {s['alignment']:.4f}  (alpha={s['alpha']:g}, mean over "
                     f"{s['n_pairs']:,} positive pairs)")
    if s["uniformity_method"] == "exact":
        pairs = s["n"] * (s["n"] - 1) // 2
        lines.append(f"uniformity        {s['uniformity']:.4f}  (t={s['t']:g}, exact over "
                     f"all {pairs:,} pairs)")
    else:
        low, high = s["uniformity_ci95"]
        low = "-inf" if low is None else f"{low:.4f}"
        lines.append(f"uniformity        {s['uniformity']:.4f}  (t={s['t']:g}, sampled from "
                     f"{m.uniformity_pairs:,} pairs, 95% CI [{low}, {high:.4f}])")
    lines.append(f"uniformity bound  {s['uniformity_bound']:.4f}  (the uniform distribution on "
                 f"S^{s['dim'] - 1}: the lowest value, in the large-N limit)")
    lines += spectral_lines(m)
    if s["knn_accuracy"] is None:
        lines.append("5-NN accuracy     -  (no labels: pass --labels)")
    else:
        every = "every row" if m.knn_queries == s["n"] else f"{m.knn_queries:,} seeded rows"
        lines.append(f"5-NN accuracy     {100 * s['knn_accuracy']:.2f}%  (leave-one-out, "
                     f"cosine, {every} as queries)")
    return lines


def spectral_lines(m) -> list[str]:
    """The printed lines of the spectral metrics of a ``Measurement``: one each, ``-`` and
    the reason where the spectrum leaves a metric undefined."""
    s, reasons = m.summary, m.spectral_reasons
    n, d = s["n"], s["dim"]
    top = f"d = {d}" if n >= d else f"N = {n}"
    k = f"d = {d}" if n > d else f"N - 1 = {n - 1}"
    rows = [
        ("RankMe", "rankme", ".1f", f"effective rank of the singular values, of {top}"),
        ("effective rank", "effective_rank", ".1f",
         f"of the covariance eigenvalues, of {k}"),
        ("stable rank", "stable_rank", ".2f", "covariance trace over its largest eigenvalue"),
        ("alpha-ReQ", "alpha_req", ".3f",
         "power-law decay of the covariance eigenvalues, ranks 2 to K/2"),
        ("W2 uniformity", "gaussian_w2", ".4f",
         "Gaussian W2 to the uniform sphere: 0 uniform, 1.4142 collapsed"),
    ]
    lines = []
    for label, key, fmt, what in rows:
        value = s[key]
        if value is None:
            lines.append(f"{label:<18}-  (undefined: {reasons[key]})")
        else:
            lines.append(f"{label:<18}{value:{fmt}}  ({what})")
    if m.views_shape is None:
        lines.append(f"{'LiDAR':<18}-  (no views: pass --views)")
    elif s["lidar"] is None:
        lines.append(f"{'LiDAR':<18}-  (undefined: {reasons['lidar']})")
    else:
        vn, vq, vd = m.views_shape
        lines.append(f"{'LiDAR':<18}{s['lidar']:.1f}  (effective rank of the LDA matrix of "
                     f"{vn:,} samples x {vq} views, of d = {vd})")
    return lines


def _return_large_frees_to_the_os() -> None:
    """Serve allocations of 1 MiB and more by mmap, so that freed temporaries go back to the
    OS at once. glibc's default raises that threshold as blocks are freed (up to 32 MiB),
    after which the chunked passes over a large file leave hundreds of MB of freed but
    fragmented heap behind (measured: +400 MB for 1M pairs). A no-op off glibc."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    from alignuniform.evaluate.measurement import measure_files
    from alignuniform.io import RunLock, write_json
    from alignuniform.report.measure_figure import measure_figure

    # locked like a run folder: two measures into one --out would overwrite each other's files
    with RunLock(args.out) as lock:
        out = lock.folder
        _return_large_frees_to_the_os()
        m = measure_files(
            args.emb, second=args.second, pairs=args.pairs, labels=args.labels, key=args.key,
            pairs_key=args.pairs_key, labels_key=args.labels_key, views=args.views,
            views_key=args.views_key, t=args.t, alpha=args.alpha,
            sample=args.sample, normalize=not args.no_normalize, seed=args.seed,
        )
        json_path = write_json(out / "measure.json", m.summary)
        png_path = measure_figure(out / "measure.png", angles=m.angles, pos_dist=m.pos_dist,
                                  labels=m.angle_labels, title=args.emb.name,
                                  n_rows=m.summary["n"])
    print("\n".join(format_lines(m, str(args.emb))))
    print(f"wrote {json_path} and {png_path}")
    return 0
