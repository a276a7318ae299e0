"""``alignuniform measure``: every file format, every bad input, and the numbers against the
functional metrics and brute-force references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alignuniform import metrics
from alignuniform.cli import main
from alignuniform.data.embedding_files import read_array, read_embeddings
from alignuniform.evaluate.measurement import (
    SUMMARY_KEYS,
    load_rows,
    loo_knn_accuracy,
    measure,
    measure_files,
)
from tests.helpers import lidar_reference, spectral_reference


def _data(n=300, d=16, seed=0):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, d)).astype(np.float32)
    y = (x + 0.3 * g.standard_normal((n, d))).astype(np.float32)
    labels = g.integers(0, 4, n)
    return x, y, labels


# ---------------------------------------------------------------- formats


def _write(fmt: str, path, x: np.ndarray, key: str = "emb"):
    if fmt == "npy":
        np.save(path, x)
    elif fmt == "npz":
        np.savez(path, **{key: x, "other": np.zeros(3)})
    elif fmt == "pt":
        torch.save(torch.from_numpy(x), path)
    elif fmt == "pt-dict":
        torch.save({key: torch.from_numpy(x), "step": 3, "y": torch.zeros(2)}, path)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({key: x, "other": np.zeros((2, 2), np.float32)}, str(path))
    elif fmt == "parquet-list":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": np.arange(len(x)), key: list(x)}), path)
    elif fmt == "parquet-fixed":
        import pyarrow as pa
        import pyarrow.parquet as pq

        arr = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
        pq.write_table(pa.table({key: arr}), path)
    elif fmt == "parquet-columns":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({f"c{i}": x[:, i] for i in range(x.shape[1])}), path)
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        header = sep.join(f"f{i}" for i in range(x.shape[1]))
        np.savetxt(path, x, delimiter=sep, header=header, comments="", fmt="%.9g")
    else:
        raise AssertionError(fmt)


SUFFIX = {"npy": ".npy", "npz": ".npz", "pt": ".pt", "pt-dict": ".pt",
          "safetensors": ".safetensors", "parquet-list": ".parquet",
          "parquet-fixed": ".parquet", "parquet-columns": ".parquet", "csv": ".csv",
          "tsv": ".tsv"}
NEEDS_KEY = {"npz", "pt-dict", "safetensors"}


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_every_format_reads_the_same_rows(tmp_path, fmt):
    x, _, _ = _data(40, 5)
    path = tmp_path / f"emb{SUFFIX[fmt]}"
    _write(fmt, path, x)
    key = "emb" if fmt in NEEDS_KEY else None
    got = read_embeddings(path, key)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float32), x, rtol=1e-6)
    if fmt == "npy":
        assert isinstance(got, np.memmap)  # large files are never read whole up front
    if fmt in NEEDS_KEY:  # several entries and no key: the message lists them
        with pytest.raises(ValueError, match="--key"):
            read_embeddings(path)
        with pytest.raises(ValueError, match=r"no entry 'nope' \(--key\); its .* \['emb'"):
            read_embeddings(path, "nope")


def test_measure_is_the_same_for_every_format(tmp_path):
    x, y, labels = _data(120, 6)
    ref = measure(x, second=y, labels=labels).summary
    for fmt in SUFFIX:
        px, py = tmp_path / f"x-{fmt}{SUFFIX[fmt]}", tmp_path / f"y-{fmt}{SUFFIX[fmt]}"
        _write(fmt, px, x)
        _write(fmt, py, y)
        key = "emb" if fmt in NEEDS_KEY else None
        got = measure_files(px, second=py, key=key, labels=None).summary
        assert got["alignment"] == pytest.approx(ref["alignment"], rel=1e-6), fmt
        assert got["uniformity"] == pytest.approx(ref["uniformity"], rel=1e-6), fmt


def test_pairs_and_labels_files_in_other_formats(tmp_path):
    x, _, labels = _data(50, 4)
    pairs = np.stack([np.arange(0, 50, 2), np.arange(1, 50, 2)], axis=1)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "pairs.csv", pairs, delimiter=",", fmt="%d")
    np.savez(tmp_path / "lab.npz", y=labels, z=np.zeros(1))
    m = measure_files(tmp_path / "x.npy", pairs=tmp_path / "pairs.csv",
                      labels=tmp_path / "lab.npz", labels_key="y")
    assert m.summary["n_pairs"] == 25
    assert m.summary["knn_accuracy"] == measure(x, labels=labels).summary["knn_accuracy"]


# ---------------------------------------------------------------- values


def test_values_equal_the_functional_metrics():
    x, y, _ = _data()
    s = measure(x, second=y).summary
    assert s["alignment"] == pytest.approx(
        metrics.alignment(torch.from_numpy(x), torch.from_numpy(y)), rel=1e-6)
    assert s["uniformity"] == pytest.approx(metrics.uniformity(torch.from_numpy(x)), rel=1e-6)
    assert s["uniformity_bound"] == metrics.uniformity_bound(16)
    assert s["uniformity_method"] == "exact" and s["uniformity_ci95"] is None
    assert s["n_pairs"] == 300 and s["knn_accuracy"] is None
    assert list(s) == list(SUMMARY_KEYS)


def test_values_equal_a_brute_force_reference():
    x, _, _ = _data(80, 5)
    g = np.random.default_rng(1)
    pairs = g.integers(0, 80, (200, 2))
    t, alpha = 1.5, 1.3
    s = measure(x, pairs=pairs, t=t, alpha=alpha).summary
    u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    align = np.mean([np.linalg.norm(u[a] - u[b]) ** alpha for a, b in pairs])
    sq = [np.sum((u[i] - u[j]) ** 2) for i in range(80) for j in range(i + 1, 80)]
    unif = math.log(np.mean(np.exp(-t * np.array(sq))))
    assert s["alignment"] == pytest.approx(align, rel=1e-5)
    assert s["uniformity"] == pytest.approx(unif, rel=1e-5)
    assert s["t"] == t and s["alpha"] == alpha


def test_sampled_beyond_the_threshold_and_with_sample():
    x, _, _ = _data(400, 8)
    xt = torch.from_numpy(x)
    est = metrics.uniformity(xt, n_pairs=5000, seed=3)
    forced = measure(x, sample=5000, seed=3)
    s = forced.summary
    assert s["uniformity_method"] == "sampled" and forced.uniformity_pairs == 5000
    assert s["uniformity"] == pytest.approx(est.value, rel=1e-6)
    assert s["uniformity_ci95"] == pytest.approx([est.low, est.high], rel=1e-6)
    big = measure(x, exact_max_rows=399).summary  # default pair count beyond the threshold
    assert big["uniformity_method"] == "sampled"
    low, high = big["uniformity_ci95"]
    assert low < metrics.uniformity(xt) < high


def _brute_loo_knn(x, y, k=5):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    correct = 0
    for i in range(len(x)):
        near = np.argsort(-sim[i], kind="stable")[:k]
        counts = np.bincount(y[near], minlength=y.max() + 1)
        best = np.flatnonzero(counts == counts.max())
        pred = next(y[j] for j in near if y[j] in best)  # tie: the nearest tied class
        correct += pred == y[i]
    return correct / len(x)


def test_leave_one_out_knn_against_brute_force():
    x, _, labels = _data(150, 6)
    acc, queries = loo_knn_accuracy(torch.from_numpy(x), labels)
    assert queries == 150
    assert acc == pytest.approx(_brute_loo_knn(x.astype(np.float64), labels))
    # duplicates of every row: the duplicate (not the row itself) is the nearest neighbour
    xx, yy = np.concatenate([x, x]), np.concatenate([labels, labels])
    assert loo_knn_accuracy(torch.from_numpy(xx), yy)[0] >= acc
    part, q = loo_knn_accuracy(torch.from_numpy(x), labels, max_queries=50, seed=1)
    assert q == 50 and 0 <= part <= 1


def test_streaming_load_equals_whole_load_and_releases_pages(tmp_path):
    x, _, _ = _data(1000, 12)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    rows, lo, hi = load_rows(mm, chunk_rows=97)
    torch.testing.assert_close(rows, F.normalize(torch.from_numpy(x).double(), dim=1).float())
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    assert lo == pytest.approx(norms.min()) and hi == pytest.approx(norms.max())
    np.testing.assert_array_equal(np.asarray(mm), x)  # released pages read back intact


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32])
def test_load_rows_of_every_dtype_and_huge_values(dtype):
    x = (10 * np.random.default_rng(0).standard_normal((300, 6))).astype(dtype)
    rows, _, _ = load_rows(x, chunk_rows=64)
    ref = F.normalize(torch.from_numpy(x.astype(np.float64)), dim=1).float()
    torch.testing.assert_close(rows, ref)
    if dtype in (np.float32, np.float64):  # squares overflow: the rows are scaled first
        huge = np.full((3, 4), 1e30 if dtype == np.float32 else 1e300, dtype)
        torch.testing.assert_close(load_rows(huge)[0], torch.full((3, 4), 0.5))
    if dtype == np.float64:
        with pytest.raises(ValueError, match="beyond the float32 range"):
            load_rows(np.full((3, 4), 1e300), normalize=False)


def test_normalisation_messages_and_no_normalize():
    x, _, _ = _data(60, 4)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert measure(unit).notes == []
    m = measure(x)
    assert m.summary["normalized"] is True and "not unit norm" in m.notes[0]
    raw = measure(x, normalize=False)
    assert raw.summary["normalized"] is False and "as given" in raw.notes[0]
    assert raw.summary["uniformity"] == pytest.approx(
        metrics.uniformity(torch.from_numpy(x), normalize=False), rel=1e-6)


# ---------------------------------------------------------------- bad input


def test_sampled_uniformity_of_far_apart_raw_rows_is_exact_in_log_space():
    x = 100 * np.eye(4, dtype=np.float32)  # every pair at distance 141: exp(-2 * 2e4) = 0
    # every pair term is exp(-40000): the log-space sampler and the exact kernel give -40000
    assert measure(x, normalize=False, sample=100).summary["uniformity"] == pytest.approx(-4e4)
    assert measure(x, normalize=False).summary["uniformity"] == pytest.approx(-4e4)


def test_nan_rows_name_the_first_row_and_the_count():
    x, _, _ = _data(200, 4)
    x[[17, 150, 151]] = np.nan
    x[151, 0] = np.inf
    with pytest.raises(ValueError, match=r"3 rows with NaN or Inf.*first: row 17"):
        measure(x)
    with pytest.raises(ValueError, match=r"3 rows with NaN or Inf.*first: row 17"):
        load_rows(x, chunk_rows=16)  # the count spans chunks


def test_zero_rows_cannot_be_normalised():
    x, _, _ = _data(50, 4)
    x[[5, 9]] = 0
    with pytest.raises(ValueError, match=r"2 all-zero rows \(first: row 5\).*cannot be normal"):
        measure(x)
    assert measure(x, normalize=False).summary["n"] == 50


def test_mismatched_shapes(tmp_path):
    x, y, _ = _data(50, 4)
    with pytest.raises(ValueError, match="same shape"):
        measure(x, second=y[:49])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y[:, :3])
    with pytest.raises(ValueError, match=r"same shape.*\(50, 4\) and \(50, 3\)"):
        measure_files(tmp_path / "x.npy", second=tmp_path / "y.npy")


@pytest.mark.parametrize("bad", [[[0, 50]], [[-1, 2]], [[3, 4], [0, 99]]])
def test_pair_indices_out_of_range_or_negative(tmp_path, bad):
    x, _, _ = _data(50, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "p.npy", np.array(bad))
    with pytest.raises(ValueError, match=r"out of range \[0, 49\]"):
        measure_files(tmp_path / "x.npy", pairs=tmp_path / "p.npy")
    with pytest.raises(ValueError, match="out of range"):
        measure(x, pairs=np.array(bad))


def test_bad_pairs_shape_and_fractions(tmp_path):
    x, _, _ = _data(50, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "p3.npy", np.zeros((4, 3), np.int64))
    with pytest.raises(ValueError, match=r"shape \(K, 2\)"):
        measure_files(tmp_path / "x.npy", pairs=tmp_path / "p3.npy")
    np.save(tmp_path / "pf.npy", np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="integers"):
        measure_files(tmp_path / "x.npy", pairs=tmp_path / "pf.npy")


def test_labels_of_the_wrong_length(tmp_path):
    x, _, labels = _data(50, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "l.npy", labels[:49])
    with pytest.raises(ValueError, match="49 entries but EMB has 50 rows"):
        measure_files(tmp_path / "x.npy", labels=tmp_path / "l.npy")
    with pytest.raises(ValueError, match="one per row"):
        measure(x, labels=labels[:49])


def test_unsupported_and_unreadable_files(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ValueError, match=r"unsupported file type '.h5'.*\.npy.*\.parquet.*\.csv"):
        read_array(tmp_path / "x.h5")
    (tmp_path / "broken.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"broken.npy.*supported"):
        read_array(tmp_path / "broken.npy")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(ValueError, match="could not read it as .parquet"):
        read_array(tmp_path / "broken.parquet")
    (tmp_path / "words.csv").write_text("a,b\n1,x\n")
    with pytest.raises(ValueError, match="not a table of numbers"):
        read_array(tmp_path / "words.csv")
    with pytest.raises(FileNotFoundError):
        read_array(tmp_path / "missing.npy")


def test_truncated_npy_folder_and_empty_csv_get_one_clear_line(tmp_path, capsys, recwarn):
    np.save(tmp_path / "x.npy", np.ones((50, 8), np.float32))
    raw = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.npy is truncated: its header says shape "
                       r"\(50, 8\) of float32 \(1,728 bytes .*\), but the file holds 864"):
        read_array(tmp_path / "cut.npy")
    (tmp_path / "emb.npy").mkdir()
    with pytest.raises(ValueError, match="emb.npy is a folder, not a file"):
        read_array(tmp_path / "emb.npy")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty: no rows of numbers"):
        read_array(tmp_path / "empty.csv")
    assert not recwarn.list  # numpy's "input contained no data" warning is not printed
    for name in ("cut.npy", "emb.npy", "empty.csv"):
        assert main(["measure", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("alignuniform measure: error:") and "\n" not in err, err


def test_a_wrong_parquet_column_lists_the_columns(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.ones((5, 3), np.float32)
    pq.write_table(pa.table({"emb": list(x), "ids": np.arange(5)}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"no entry 'nope' \(--key\); its columns are "
                       r"\['emb', 'ids'\]$"):
        read_array(tmp_path / "x.parquet", "nope")
    assert main(["measure", str(tmp_path / "x.parquet"), "--key", "nope",
                 "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("shape", [(10,), (4, 5, 6)])
def test_1d_and_3d_arrays(tmp_path, shape):
    np.save(tmp_path / "x.npy", np.ones(shape, np.float32))
    with pytest.raises(ValueError, match=r"must be 2-D \(N rows x d dimensions\)"):
        read_embeddings(tmp_path / "x.npy")
    with pytest.raises(ValueError, match="2-D"):
        measure(np.ones(shape, np.float32))


def test_ragged_parquet_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"emb": [[1.0, 2.0], [3.0, 4.0], [5.0]]}), tmp_path / "r.parquet")
    with pytest.raises(ValueError, match=r"lists of different lengths.*row 2 has 1"):
        read_embeddings(tmp_path / "r.parquet")


# ---------------------------------------------------------------- the command


def test_cli_writes_json_png_and_one_line_per_number(tmp_path, capsys):
    x, y, labels = _data(200, 8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "l.npy", labels)
    out = tmp_path / "out"
    rc = main(["measure", str(tmp_path / "x.npy"), "--second", str(tmp_path / "y.npy"),
               "--labels", str(tmp_path / "l.npy"), "--out", str(out), "--seed", "4",
               "--t", "1.5", "--no-progress"])
    assert rc == 0
    saved = json.loads((out / "measure.json").read_text())
    assert list(saved) == list(SUMMARY_KEYS)
    ref = measure(x, second=y, labels=labels, t=1.5, seed=4).summary
    assert saved == pytest.approx(ref)
    assert saved["seed"] == 4 and saved["t"] == 1.5
    assert (out / "measure.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    for word in ("alignment", "uniformity ", "uniformity bound", "5-NN accuracy",
                 "not unit norm", "measure.json"):
        assert word in printed


def test_cli_sampled_json_and_bad_input_message(tmp_path, capsys):
    x, _, _ = _data(100, 4)
    np.save(tmp_path / "x.npy", x)
    assert main(["measure", str(tmp_path / "x.npy"), "--sample", "1000",
                 "--out", str(tmp_path / "o")]) == 0
    saved = json.loads((tmp_path / "o" / "measure.json").read_text())
    assert saved["uniformity_method"] == "sampled" and len(saved["uniformity_ci95"]) == 2
    assert saved["alignment"] is None and saved["n_pairs"] == 0
    assert saved["knn_accuracy"] is None
    capsys.readouterr()
    x[3] = np.nan
    np.save(tmp_path / "bad.npy", x)
    assert main(["measure", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "alignuniform measure: error:" in err and "row 3" in err
    assert main(["measure", str(tmp_path / "x.txt"), "--out", str(tmp_path / "o3")]) == 2


def test_help_states_the_library_thresholds():
    from alignuniform.cli import measure as cli_measure
    from alignuniform.evaluate import measurement

    for name in ("EXACT_MAX_ROWS", "DEFAULT_SAMPLE_PAIRS", "KNN_MAX_QUERIES"):
        assert getattr(cli_measure, name) == getattr(measurement, name)


def test_blockwise_finite_check_finds_every_position(monkeypatch):
    from alignuniform import _checks

    monkeypatch.setattr(_checks, "FINITE_BLOCK", 64)  # blocks of 8 rows of 8
    x = torch.randn(50, 8)
    assert _checks.all_finite(x)
    for row, value in ((0, math.nan), (49, math.inf), (23, -math.inf)):
        y = x.clone()
        y[row, 5] = value
        assert not _checks.all_finite(y)
        with pytest.raises(ValueError, match="NaN or Inf"):
            metrics.uniformity(y)


def test_a_second_measure_into_the_same_out_is_refused(tmp_path, capsys):
    from alignuniform.io import RunLock

    x, _, _ = _data(30, 4)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "o"
    with RunLock(out):  # another measure (or train, or sweep) is writing there
        assert main(["measure", str(tmp_path / "x.npy"), "--out", str(out)]) == 2
        assert f"{out} is in use by pid" in capsys.readouterr().err
        assert not (out / "measure.json").exists()
    assert main(["measure", str(tmp_path / "x.npy"), "--out", str(out)]) == 0
    assert (out / "measure.json").exists()


# ---------------------------------------------------------------- spectral metrics


def test_spectral_metrics_equal_numpy_references_streamed_in_chunks():
    g = np.random.default_rng(3)
    x = (g.standard_normal((500, 12)) * np.linspace(3, 0.2, 12)).astype(np.float32)
    s = measure(x, chunk_rows=37).summary
    unit = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    ref = spectral_reference(unit)
    assert {k: s[k] for k in ref} == pytest.approx(ref, rel=1e-5)
    assert s["lidar"] is None
    raw = measure(x, normalize=False, chunk_rows=64).summary  # raw rows; W2 normalises
    ref = spectral_reference(x)
    assert {k: raw[k] for k in ref} == pytest.approx(ref, rel=1e-5)
    assert raw["rankme"] != pytest.approx(s["rankme"], rel=1e-3)
    assert list(s) == list(SUMMARY_KEYS)


def test_lidar_of_views_equals_a_numpy_reference(tmp_path):
    g = np.random.default_rng(4)
    items = g.standard_normal((300, 1, 10))
    views = (items + 0.4 * g.standard_normal((300, 3, 10))).astype(np.float32)
    x, _, _ = _data(100, 10)
    got = measure(x, views=views, normalize=False, chunk_rows=50)
    assert got.summary["lidar"] == pytest.approx(lidar_reference(views), rel=1e-6)
    assert got.views_shape == (300, 3, 10)
    unit = views / np.linalg.norm(views, axis=2, keepdims=True)
    normalised = measure(x, views=views).summary["lidar"]
    assert normalised == pytest.approx(lidar_reference(unit), rel=1e-5)
    np.save(tmp_path / "v.npy", views)
    np.save(tmp_path / "x.npy", x)
    fromfile = measure_files(tmp_path / "x.npy", views=tmp_path / "v.npy").summary
    assert fromfile["lidar"] == pytest.approx(lidar_reference(unit), rel=1e-5)


@pytest.mark.parametrize("shape", [(20, 1, 4), (1, 3, 4), (20, 4)])
def test_views_of_the_wrong_shape_are_refused(tmp_path, shape):
    x, _, _ = _data(50, 4)
    v = np.ones(shape, dtype=np.float32)
    with pytest.raises(ValueError, match="VIEWS must"):
        measure(x, views=v)
    np.save(tmp_path / "v.npy", v)
    with pytest.raises(ValueError, match=r"views .*v\.npy must"):
        _measure_files_views(tmp_path, x)


def _measure_files_views(tmp_path, x):
    np.save(tmp_path / "x.npy", x)
    return measure_files(tmp_path / "x.npy", views=tmp_path / "v.npy")


def test_nan_views_are_refused_naming_the_sample():
    x, _, _ = _data(50, 4)
    v = np.ones((30, 2, 4), dtype=np.float32)
    v[17, 1, 2] = np.nan
    with pytest.raises(ValueError, match="VIEWS has NaN or Inf values .first: sample 17"):
        measure(x, views=v, chunk_rows=8)


def test_a_collapsed_spectrum_records_null_and_the_command_succeeds(tmp_path, capsys):
    g = np.random.default_rng(5)
    x = np.outer(g.standard_normal(60), g.standard_normal(8)).astype(np.float32)  # rank 1
    same = np.repeat(g.standard_normal((1, 1, 8)), 10, 0).repeat(2, 1).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "v.npy", same)
    rc = main(["measure", str(tmp_path / "x.npy"), "--views", str(tmp_path / "v.npy"),
               "--out", str(tmp_path / "o")])
    assert rc == 0
    saved = json.loads((tmp_path / "o" / "measure.json").read_text())
    assert saved["alpha_req"] is None and saved["lidar"] is None
    assert saved["rankme"] == pytest.approx(1.0, abs=1e-3)
    printed = capsys.readouterr().out
    assert "alpha-ReQ         -  (undefined: only 0 covariance eigenvalues" in printed
    assert "LiDAR             -  (undefined: the between-class scatter is zero" in printed


def test_cli_prints_one_line_per_spectral_metric_after_uniformity(tmp_path, capsys):
    x, y, _ = _data(200, 8)
    views = np.stack([x[:50], y[:50]], 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "v.npy", views)
    assert main(["measure", str(tmp_path / "x.npy"), "--views", str(tmp_path / "v.npy"),
                 "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("uniformity bound"))
    s = measure(x, views=views).summary
    assert lines[start + 1 : start + 7] == [
        f"RankMe            {s['rankme']:.1f}  (effective rank of the singular values, of d = 8)",
        f"effective rank    {s['effective_rank']:.1f}  (of the covariance eigenvalues, of d = 8)",
        f"stable rank       {s['stable_rank']:.2f}  (covariance trace over its largest "
        "eigenvalue)",
        f"alpha-ReQ         {s['alpha_req']:.3f}  (power-law decay of the covariance "
        "eigenvalues, ranks 2 to K/2)",
        f"W2 uniformity     {s['gaussian_w2']:.4f}  (Gaussian W2 to the uniform sphere: "
        "0 uniform, 1.4142 collapsed)",
        f"LiDAR             {s['lidar']:.1f}  (effective rank of the LDA matrix of 50 "
        "samples x 2 views, of d = 8)",
    ]
    assert lines[start + 7].startswith("5-NN accuracy")
    assert main(["measure", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o2")]) == 0
    assert "LiDAR             -  (no views: pass --views)" in capsys.readouterr().out
