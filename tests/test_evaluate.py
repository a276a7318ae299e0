"""Tests for alignuniform.evaluate: probes, k-NN, held-out alignment/uniformity, the pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignuniform import evaluate as ev
from alignuniform.evaluate.probe import fit_logreg
from tests.helpers import MeanColour, synthetic_images

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------------------
# synthetic data


def _separable(n: int, dim: int, classes: int, seed: int, margin: float = 0.5):
    """Gaussian points labelled by a known linear classifier, keeping a margin between classes."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, classes, generator=gen)
    b = torch.randn(classes, generator=gen)
    xs, ys = [], []
    while sum(len(x) for x in xs) < n:
        x = torch.randn(4 * n, dim, generator=gen)
        logits = x @ w + b
        top2 = logits.topk(2, dim=1).values
        keep = top2[:, 0] - top2[:, 1] > margin
        xs.append(x[keep])
        ys.append(logits[keep].argmax(dim=1))
    return torch.cat(xs)[:n], torch.cat(ys)[:n], w, b


# ---------------------------------------------------------------------------------------------
# linear probe


def test_probe_recovers_known_linear_classifier():
    x, y, w_true, _ = _separable(1500, 16, 4, seed=0)
    grid = (1e-4, 1e-3, 1e-2, 1e-1)
    res = ev.linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], seed=0, weight_decays=grid)
    assert res["accuracy"] >= 0.97
    assert res["train_accuracy"] >= 0.98
    assert res["converged"]
    assert res["weight_decay"] in grid
    assert set(res["val_accuracy"]) <= {f"{w:g}" for w in grid}
    assert res["val_accuracy"][f"{res['weight_decay']:g}"] == max(res["val_accuracy"].values())
    # the learned boundaries point the same way as the true ones (up to a per-class shift)
    w, _, _ = fit_logreg(x, y, 4, res["weight_decay"])
    centred = lambda m: m - m.mean(dim=1, keepdim=True)  # noqa: E731
    cos = torch.nn.functional.cosine_similarity(centred(w).flatten(), centred(w_true).flatten(),
                                                dim=0)
    assert cos > 0.9


def test_probe_fails_on_random_labels():
    """Guard against a probe that cannot fail: shuffled labels must give chance accuracy."""
    x, y, _, _ = _separable(1500, 16, 4, seed=1)
    y_shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    res = ev.linear_probe(x[:1000], y_shuffled[:1000], x[1000:], y_shuffled[1000:])
    assert res["accuracy"] < 0.45


def test_probe_path_stops_after_patience_non_improving_strengths():
    x, y, _, _ = _separable(600, 8, 3, seed=5)
    noisy = y.clone()
    noisy[::3] = (noisy[::3] + 1) % 3  # label noise: weak regularisation stops paying off
    grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    full = ev.linear_probe(x[:400], noisy[:400], x[400:], y[400:], weight_decays=grid,
                           patience=None)
    early = ev.linear_probe(x[:400], noisy[:400], x[400:], y[400:], weight_decays=grid,
                            patience=1)
    assert len(full["val_accuracy"]) == len(grid)
    tried = list(early["val_accuracy"].values())
    assert len(tried) < len(grid) and tried[-1] <= max(tried[:-1])
    assert early["val_accuracy"] == {k: full["val_accuracy"][k] for k in early["val_accuracy"]}


def test_probe_selects_strength_on_a_subset_and_refits_on_all():
    x, y, _, _ = _separable(900, 8, 3, seed=6)
    grid = (1e-3, 1e-1)
    sub = ev.linear_probe(x[:600], y[:600], x[600:], y[600:], weight_decays=grid,
                          select_max=200)
    assert sub["select_max"] == 200 and sub["n_train"] == 600 and sub["accuracy"] >= 0.95
    # the validation split is 10 % of the 200-sample selection subset: 20 samples
    assert all(abs(acc * 20 - round(acc * 20)) < 1e-9 for acc in sub["val_accuracy"].values())


def test_probe_matches_sklearn_logistic_regression():
    """Same objective as sklearn's lbfgs multinomial LR with C = 1 / (n * weight_decay)."""
    sklearn_lm = pytest.importorskip("sklearn.linear_model")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 8, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.8 * torch.randn(300, generator=gen, dtype=torch.float64) > 0).long()
    y = y + (x[:, 1] > 0.5).long()  # three overlapping classes: a unique, finite optimum
    wd = 1e-2
    res = ev.linear_probe(x, y, x, y, weight_decays=[wd], standardize=False, tol=1e-9)
    ref = sklearn_lm.LogisticRegression(C=1.0 / (len(x) * wd), tol=1e-10, max_iter=10000)
    ref.fit(x.numpy(), y.numpy())
    assert res["train_accuracy"] == pytest.approx(ref.score(x.numpy(), y.numpy()), abs=1e-12)
    w, b, _ = fit_logreg(x, y, 3, wd, tol=1e-9)
    np.testing.assert_allclose(w.T.numpy(), ref.coef_, atol=1e-4)
    np.testing.assert_allclose(b.numpy(), ref.intercept_, atol=1e-4)


def test_probe_is_deterministic_for_a_seed():
    x, y, _, _ = _separable(600, 8, 3, seed=2)
    a = ev.linear_probe(x[:400], y[:400], x[400:], y[400:], seed=5)
    b = ev.linear_probe(x[:400], y[:400], x[400:], y[400:], seed=5)
    a.pop("seconds"), b.pop("seconds")
    assert a == b


# ---------------------------------------------------------------------------------------------
# k-NN against a brute-force float64 reference


def _knn_reference(train_x, train_y, test_x, k, temperature):
    """Loops in float64: cosine similarity, sort, vote; ties to the class met first."""
    tr = train_x.double().numpy()
    te = test_x.double().numpy()
    tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
    te = te / np.linalg.norm(te, axis=1, keepdims=True)
    preds = []
    for q in te:
        sims = [(float(q @ r), i) for i, r in enumerate(tr)]
        sims.sort(key=lambda s: -s[0])
        score: dict[int, float] = {}
        first: dict[int, int] = {}
        for rank, (s, i) in enumerate(sims[:k]):
            c = int(train_y[i])
            vote = 1.0 if temperature is None else math.exp(s / temperature)
            score[c] = score.get(c, 0.0) + vote
            first.setdefault(c, rank)
        preds.append(max(score, key=lambda c: (score[c], -first[c])))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,temperature,chunk", [(5, None, 7), (4, None, 1000), (20, 0.1, 13)])
def test_knn_matches_brute_force(k, temperature, chunk):
    gen = torch.Generator().manual_seed(k)
    train_x = torch.randn(97, 6, generator=gen)
    train_y = torch.randint(0, 5, (97,), generator=gen)
    test_x = torch.randn(41, 6, generator=gen)
    pred = ev.knn_predict(train_x, train_y, test_x, k=k, temperature=temperature,
                          chunk_size=chunk)
    ref = _knn_reference(train_x, train_y, test_x, k, temperature)
    assert torch.equal(pred, ref)
    test_y = ref.clone()
    test_y[:10] = (test_y[:10] + 1) % 5
    acc = ev.knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature,
                          chunk_size=chunk)
    assert acc == pytest.approx(31 / 41)


def test_knn_tie_goes_to_the_nearest_neighbours_class():
    # two neighbours of class 1 and two of class 0; class 0 owns the nearest one
    train_x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 1, 0, 2])
    pred = ev.knn_predict(train_x, train_y, torch.tensor([[1.0, -0.05]]), k=4)
    assert pred.tolist() == [0]


def test_knn_chunking_does_not_change_predictions():
    gen = torch.Generator().manual_seed(0)
    train_x = torch.randn(3000, 16, generator=gen)
    train_y = torch.randint(0, 10, (3000,), generator=gen)
    test_x = torch.randn(500, 16, generator=gen)
    whole = ev.knn_predict(train_x, train_y, test_x, k=5, chunk_size=10_000)
    for chunk in (5, 64, 777):
        sub = test_x[:20] if chunk == 5 else test_x
        assert torch.equal(ev.knn_predict(train_x, train_y, sub, k=5, chunk_size=chunk),
                           whole[: len(sub)])


def test_knn_perfect_on_clustered_data():
    centres = torch.eye(4) * 10
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(50)
    x = centres[y] + torch.randn(200, 4, generator=gen)
    assert ev.knn_accuracy(x[:160], y[:160], x[160:], y[160:], k=5) == 1.0
    assert ev.knn_accuracy(x[:160], y[:160], x[160:], y[160:], k=20, temperature=0.07) == 1.0


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_inputs_give_clear_errors():
    x = torch.randn(4, 3)
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="only 4 reference samples"):
        ev.knn_accuracy(x, y, x, y, k=5)
    with pytest.raises(ValueError, match="missing"):
        ev.linear_probe(x, None, x, y)
    with pytest.raises(ValueError, match="unlabelled"):
        ev.knn_accuracy(x, torch.tensor([0, -1, 0, 1]), x, y, k=2)
    with pytest.raises(ValueError, match="3 entries but there are 4"):
        ev.knn_accuracy(x, y[:3], x, y, k=2)
    with pytest.raises(ValueError, match="features but test_x has 2"):
        ev.linear_probe(x, y, x[:, :2], y)
    with pytest.raises(TypeError, match="integer"):
        ev.linear_probe(x, y.float(), x, y)
    with pytest.raises(ValueError, match="NaN"):
        ev.knn_accuracy(x.clone().fill_(float("nan")), y, x, y, k=2)
    with pytest.raises(ValueError, match="single class"):
        ev.linear_probe(x, torch.zeros(4, dtype=torch.long), x, y)
    with pytest.raises(ValueError, match="temperature"):
        ev.knn_accuracy(x, y, x, y, k=2, temperature=0.0)


# ---------------------------------------------------------------------------------------------
# results JSON


def test_results_json_round_trips(tmp_path):
    x, y, _, _ = _separable(300, 4, 3, seed=4)
    results = {"layers": {"embedding": ev.linear_probe(x[:200], y[:200], x[200:], y[200:])},
               "knn": ev.knn_accuracy(x[:200], y[:200], x[200:], y[200:])}
    path = ev.save_results(results, tmp_path / "out" / "eval.json")
    assert ev.load_results(path) == results
    assert not list((tmp_path / "out").glob("*.tmp"))
    with pytest.raises(FileNotFoundError):
        ev.load_results(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------
# model-level: a tiny encoder on the synthetic image set


def _tiny_cnn():
    from alignuniform.models import build_model

    torch.manual_seed(0)
    return build_model("small_cnn", feat_dim=8, width=4, hidden_dim=16)


def test_extract_features_matches_direct_forward_and_restores_mode():
    from alignuniform.data import build_recipe

    model, data = _tiny_cnn(), synthetic_images("train", 40)
    transform = build_recipe("cifar10_eval")
    model.train()
    feats = ev.extract_features(model, [(transform(x), y) for x, y in data], batch_size=16,
                                progress=False)
    assert model.training
    model.eval()
    x = torch.stack([transform(x) for x, _ in data])
    with torch.no_grad():
        torch.testing.assert_close(feats.embeddings, model(x))
        torch.testing.assert_close(feats.penultimate, model.features(x))
    assert feats.labels.tolist() == [y for _, y in data]
    assert feats.embeddings.shape == (40, 8) and feats.layer("penultimate").shape == (40, 16)


def test_heldout_alignment_matches_loop_reference_and_keeps_rng():
    from alignuniform.data import build_recipe

    model, data = _tiny_cnn(), synthetic_images("val", 24)
    recipe = build_recipe("cifar10")
    before = torch.random.get_rng_state()
    got = ev.heldout_alignments(model, data, recipe, seed=3, batch_size=5, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    # reference: the same seeded draws, one image at a time, float64 formula
    torch.manual_seed(3)
    views = [(recipe(x), recipe(x)) for x, _ in data]
    model.eval()
    with torch.no_grad():
        a = model(torch.stack([v[0] for v in views])).double()
        b = model(torch.stack([v[1] for v in views])).double()
    assert got["embedding"] == pytest.approx(float((a - b).norm(dim=1).pow(2).mean()), rel=1e-5)
    assert 0 < got["embedding"] < 4
    again = ev.heldout_alignment(model, data, recipe, seed=3, progress=False)
    assert again == pytest.approx(got["embedding"], rel=1e-6)
    # another seed draws other pairs: the reference at seed 4, not merely "a different value"
    torch.manual_seed(4)
    views = [(recipe(x), recipe(x)) for x, _ in data]
    with torch.no_grad():
        a = model(torch.stack([v[0] for v in views])).double()
        b = model(torch.stack([v[1] for v in views])).double()
    seed4 = float((a - b).norm(dim=1).pow(2).mean())
    assert abs(seed4 - again) > 1e-3  # the check below can tell the seeds apart
    assert ev.heldout_alignment(model, data, recipe, seed=4, progress=False) == pytest.approx(
        seed4, rel=1e-5)
    identity = ev.heldout_alignment(model, data, build_recipe("cifar10_eval"), progress=False)
    assert identity == pytest.approx(0.0, abs=1e-10)


def test_heldout_alignment_of_a_batched_recipe_matches_a_reference():
    """The batched executor draws both views of each batch from one generator seeded once."""
    from alignuniform.data import build_batch_recipe

    model, data = _tiny_cnn(), synthetic_images("val", 24)
    augment = build_batch_recipe("cifar10")
    before = torch.random.get_rng_state()
    got = ev.heldout_alignments(model, data, augment, seed=3, batch_size=5, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    images = torch.stack([x for x, _ in data])
    gen = torch.Generator().manual_seed(3)
    views = [[augment(images[i:i + 5], generator=gen) for _ in range(2)]
             for i in range(0, len(images), 5)]
    model.eval()
    with torch.no_grad():
        for layer, forward in (("embedding", model), ("penultimate", model.features)):
            a, b = (forward(torch.cat([v[k] for v in views])).double() for k in (0, 1))
            if layer == "penultimate":  # normalised like the embeddings
                a, b = (torch.nn.functional.normalize(z, dim=1) for z in (a, b))
            ref = float((a - b).norm(dim=1).pow(2).mean())
            assert got[layer] == pytest.approx(ref, rel=1e-5), layer


def test_evaluate_encoder_numbers_and_json(tmp_path):
    from alignuniform.data import build_recipe

    model, train, test = MeanColour(), synthetic_images("train", 200), synthetic_images("test", 80)
    transform = build_recipe("cifar10_eval")
    res = ev.evaluate_encoder(model, train, test, transform=transform,
                              recipe=build_recipe("cifar10"), weighted_k=50, progress=False)
    assert set(res["layers"]) == {"embedding", "penultimate"}
    pen = res["layers"]["penultimate"]
    # the classes differ by mean colour, which is exactly the penultimate feature
    assert pen["linear_acc"] >= 0.95 and pen["knn5_acc"] >= 0.95
    # on S^2 the inner product of two uniform points is uniform on [-1, 1]: closed form
    assert pen["dim"] == 3
    assert pen["uniformity_bound"] == pytest.approx(math.log((1 - math.exp(-8)) / 8), rel=1e-9)
    # uniformity is exact over all test embeddings: float64 brute force over every pair
    emb = torch.stack([model(transform(x)[None])[0] for x, _ in test]).detach().double()
    d2 = torch.cdist(emb, emb).pow(2)
    iu = torch.triu_indices(len(emb), len(emb), 1)
    ref = float(torch.exp(-2 * d2[iu[0], iu[1]]).mean().log())
    assert res["layers"]["embedding"]["uniformity"] == pytest.approx(ref, rel=1e-4)
    # alignment: two views of every test item drawn with the evaluation seed (0), float64
    recipe = build_recipe("cifar10")
    torch.manual_seed(0)
    views = [[recipe(x), recipe(x)] for x, _ in test]
    with torch.no_grad():
        a, b = (model(torch.stack([v[k] for v in views])).double() for k in (0, 1))
    assert res["layers"]["embedding"]["alignment"] == pytest.approx(
        float((a - b).norm(dim=1).pow(2).mean()), rel=1e-5)
    assert res["n_train"] == 200 and res["n_test"] == 80
    assert res["settings"]["protocol"] == "fast" and res["settings"]["seed"] == 0
    path = ev.save_results(res, tmp_path / "eval.json")
    assert ev.load_results(path) == json_normalised(res)


def json_normalised(obj):
    """What JSON makes of a dict: tuples become lists."""
    import json

    return json.loads(json.dumps(obj))


def test_paper_probe_trains_a_linear_layer():
    from alignuniform.data import build_recipe
    from alignuniform.data.recipes import CIFAR10_EVAL

    model, train, test = MeanColour(), synthetic_images("train", 64), synthetic_images("test", 32)
    kwargs = dict(augment=ev.probe_augmentation(CIFAR10_EVAL),
                  transform=build_recipe("cifar10_eval"), layers=("penultimate", "embedding"),
                  epochs=10, lr=0.1, batch_size=16, seed=1, progress=False)
    res = ev.linear_probe_paper(model, train, test, **kwargs)
    assert res["penultimate"]["accuracy"] >= 0.9
    assert res["penultimate"]["milestones"] == [6, 8]
    again = ev.linear_probe_paper(model, train, test, **kwargs)
    assert again["embedding"]["accuracy"] == res["embedding"]["accuracy"]
    kwargs["augment"] = ev.probe_augmentation(CIFAR10_EVAL, batched=True)
    batched = ev.linear_probe_paper(model, train, test, **kwargs)
    assert batched["penultimate"]["accuracy"] >= 0.9


def test_make_monitor_is_cheap_fixed_and_side_effect_free():
    from alignuniform.data import build_recipe

    model, train, test = _tiny_cnn(), synthetic_images("train", 60), synthetic_images("val", 30)
    monitor = ev.make_monitor(train, test, build_recipe("cifar10"),
                              transform=build_recipe("cifar10_eval"), every=2, k=10,
                              n_train=40, n_test=20)
    model.train()
    before = torch.random.get_rng_state()
    out = monitor(model, 2)
    assert set(out) == {"knn_acc", "align", "uniform"}
    assert model.training and torch.equal(torch.random.get_rng_state(), before)
    assert monitor(model, 3) == {}
    assert monitor(model, 4) == out  # same subsets, same pairs, same weights
    with pytest.raises(ValueError, match="only 40 samples"):
        ev.make_monitor(train, test, build_recipe("cifar10"), k=50, n_train=40)


def test_unlabelled_data_is_refused():
    x = torch.randn(10, 3)
    feats = ev.Features(x, None, torch.full((10,), -1))
    with pytest.raises(ValueError, match="unlabelled"):
        ev.linear_probe(feats.embeddings, feats.labels, x, torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="no features"):
        feats.layer("penultimate")


# ---------------------------------------------------------------------------------------------
# evaluate_checkpoint and the CLI


@pytest.fixture
def checkpoint(tmp_path):
    from alignuniform.checkpoint import save_checkpoint

    config = {"model": {"name": "small_cnn", "feat_dim": 8,
                        "kwargs": {"width": 4, "hidden_dim": 16}},
              "data": {"name": "synthetic", "root": None, "recipe": "cifar10",
                       "kwargs": {"n": 80}}}
    return save_checkpoint(tmp_path / "run" / "checkpoint.pt",
                           {"model": _tiny_cnn().state_dict(), "config": config, "epoch": 1})


def test_evaluate_checkpoint_uses_the_run_config_and_random_init(checkpoint):
    kwargs = dict(n_train=60, n_test=30, weighted_k=20, layers=["embedding"], progress=False,
                  probe_kwargs={"weight_decays": [1e-3, 1e-1]})
    res = ev.evaluate_checkpoint(checkpoint, **kwargs)
    assert res["data"] == {"name": "synthetic", "root": None, "train_split": "train",
                           "test_split": "test", "recipe": "cifar10",
                           "eval_transform": "cifar10_eval", "pairs": "per-sample",
                           "n_train": 60, "n_test": 30}
    assert res["checkpoint"]["model"] == "small_cnn" and res["n_test"] == 30
    whole = ev.evaluate_checkpoint(checkpoint, **{**kwargs, "n_train": None, "n_test": None})
    assert whole["n_train"] == whole["n_test"] == 80  # the run's data.kwargs are honoured
    fresh = ev.evaluate_checkpoint(checkpoint, random_init=True, seed=5, **kwargs)
    assert fresh["checkpoint"]["random_init"]
    # random init ignores the stored weights: a checkpoint of other weights gives the same
    # numbers (a flag that loaded the weights anyway would give other ones)
    from alignuniform.checkpoint import load_checkpoint, save_checkpoint
    from alignuniform.models import build_model

    state = load_checkpoint(checkpoint)
    torch.manual_seed(1)
    state["model"] = build_model("small_cnn", feat_dim=8, width=4, hidden_dim=16).state_dict()
    other = save_checkpoint(checkpoint.parent.parent / "other" / "checkpoint.pt", state)
    trained_other = ev.evaluate_checkpoint(other, **kwargs)
    fresh_other = ev.evaluate_checkpoint(other, random_init=True, seed=5, **kwargs)
    numbers = ("linear_acc", "knn5_acc", "knn_weighted_acc", "alignment", "uniformity")
    emb = {name: r["layers"]["embedding"] for name, r in
           (("res", res), ("fresh", fresh), ("trained_other", trained_other),
            ("fresh_other", fresh_other))}
    assert {k: emb["fresh_other"][k] for k in numbers} == {k: emb["fresh"][k] for k in numbers}
    assert abs(emb["trained_other"]["uniformity"] - emb["res"]["uniformity"]) > 1e-3


def test_cli_eval_writes_json_and_table(checkpoint, tmp_path, capsys):
    from alignuniform.cli import main

    out = tmp_path / "ev"
    code = main(["eval", str(checkpoint), "--n-train", "60", "--n-test", "30", "--weighted-k",
                 "20", "--out", str(out), "--seed", "1", "--no-progress",
                 "--weight-decays", "0.01"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "penultimate" in printed and "uniform" in printed and "eval.json" in printed
    res = ev.load_results(out / "eval.json")
    assert res["settings"]["seed"] == 1 and res["command"]["seed"] == 1
    assert res["layers"]["penultimate"]["probe_fast"]["weight_decay"] == 0.01
    # every number is the library's for the same arguments
    direct = ev.evaluate_checkpoint(checkpoint, n_train=60, n_test=30, weighted_k=20, seed=1,
                                    probe_kwargs={"weight_decays": [0.01]}, progress=False)
    numbers = ("linear_acc", "knn5_acc", "knn_weighted_acc", "alignment", "uniformity",
               "uniformity_bound")
    for layer in ("embedding", "penultimate"):
        assert {k: res["layers"][layer][k] for k in numbers} == {
            k: direct["layers"][layer][k] for k in numbers}
    for layer, values in res["layers"].items():  # the table shows them
        assert f"{100 * values['linear_acc']:5.1f}%" in printed
        assert f"{values['uniformity']:8.3f}" in printed, layer
        lines = printed.splitlines()
        header = next(i for i, line in enumerate(lines) if "RankMe" in line)
        spectral = next(line for line in lines[header:] if line.startswith(layer))
        assert spectral.split()[1:3] == [f"{values['rankme']:.1f}",
                                         f"{values['effective_rank']:.1f}"], layer
    # an eval.json from before the spectral metrics prints the first table only
    from alignuniform.cli.eval import format_table

    spectral_keys = ("rankme", "effective_rank", "stable_rank", "alpha_req", "gaussian_w2",
                     "lidar", "spectral_undefined")
    old = {**res, "layers": {name: {k: v for k, v in values.items() if k not in spectral_keys}
                             for name, values in res["layers"].items()}}
    table = format_table(old).splitlines()
    assert len(table) == len(format_table(res).splitlines()) - 4
    assert not any("RankMe" in line for line in table)


def test_cli_eval_bad_checkpoints_give_one_line_errors(checkpoint, tmp_path, capsys):
    import torch as _torch

    from alignuniform.cli import main

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:300])
    foreign = tmp_path / "foreign.pt"
    state = _torch.load(checkpoint, weights_only=True)
    state["config"]["model"]["kwargs"]["width"] = 8  # weights of another architecture
    del state["checksum"]  # edited by hand, as another tool would write it: not checked
    _torch.save(state, foreign)
    for path, message in [(truncated, "not a readable checkpoint"), (foreign, "do not fit"),
                          (tmp_path / "missing.pt", "no checkpoint")]:
        assert main(["eval", str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["eval", str(checkpoint), "--n-train", "10", "--k", "20", "--no-progress"]) == 2
    assert "only 10 reference samples" in capsys.readouterr().err
    # 1-D signals for an image CNN: said in terms of the data, not of a missing batch axis
    assert main(["eval", str(checkpoint), "--data", "mnist1d", "--n-train", "40",
                 "--n-test", "20", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert ("small_cnn encoder was trained on 'synthetic' and cannot read 'mnist1d' items "
            "(shape (1, 40)") in err and "unsqueeze" not in err and err.count("\n") == 1


def test_cli_eval_scores_on_the_test_zip_beside_the_training_zip(tmp_path, monkeypatch):
    """A CIFAR-10 zip run is scored on cifar10-test-jpeg.zip when it is there, else on val."""
    import io
    import zipfile

    from PIL import Image

    from alignuniform.checkpoint import save_checkpoint
    from alignuniform.cli import main

    monkeypatch.setenv("ALIGNUNIFORM_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)

    def write_zip(path, top, per_class):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for c, cls in enumerate(("cat", "dog", "emu")):
                for i in range(per_class):  # a class is a colour, plus noise
                    pixels = np.full((32, 32, 3), 40, dtype=np.uint8)
                    pixels[..., c] = 220
                    pixels = np.clip(pixels + rng.integers(-20, 20, pixels.shape), 0, 255)
                    buf = io.BytesIO()
                    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG")
                    zf.writestr(f"{top}/{cls}/{i:04d}.jpg", buf.getvalue())

    data = tmp_path / "data"
    data.mkdir()
    write_zip(data / "cifar10-train-jpeg.zip", "train", 12)
    config = {"model": {"name": "small_cnn", "feat_dim": 8,
                        "kwargs": {"width": 4, "hidden_dim": 16}},
              "data": {"name": "cifar10", "root": str(data), "recipe": "cifar10",
                       "val_fraction": 0.25, "kwargs": {"progress": False}}}
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoint.pt",
                           {"model": _tiny_cnn().state_dict(), "config": config, "epoch": 1})
    argv = ["eval", str(ckpt), "--weighted-k", "10", "--layers", "penultimate",
            "--weight-decays", "0.01", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "val")]) == 0
    res = ev.load_results(tmp_path / "val" / "eval.json")
    assert (res["data"]["test_split"], res["n_train"], res["n_test"]) == ("val", 27, 9)

    write_zip(data / "cifar10-test-jpeg.zip", "test", 5)
    assert main([*argv, "--out", str(tmp_path / "test")]) == 0
    res = ev.load_results(tmp_path / "test" / "eval.json")
    assert (res["data"]["test_split"], res["n_train"], res["n_test"]) == ("test", 27, 15)
    assert res["layers"]["penultimate"]["linear_acc"] * 15 == pytest.approx(
        round(res["layers"]["penultimate"]["linear_acc"] * 15))


def test_evaluate_encoder_spectral_metrics_of_the_heldout_features(tmp_path):
    from alignuniform.data import build_recipe
    from tests.helpers import lidar_reference, spectral_reference

    model, train, test = MeanColour(), synthetic_images("train", 60), synthetic_images("test", 80)
    transform, recipe = build_recipe("cifar10_eval"), build_recipe("cifar10")
    res = ev.evaluate_encoder(model, train, test, transform=transform, recipe=recipe,
                              weighted_k=20, progress=False)
    images = torch.stack([transform(x) for x, _ in test])
    torch.manual_seed(0)  # the alignment pairs: two seeded views of every test item
    views = [[recipe(x), recipe(x)] for x, _ in test]
    with torch.no_grad():
        feats = {"embedding": model(images), "penultimate": model.features(images)}
        pairs = {name: torch.stack([f(torch.stack([v[k] for v in views])) for k in (0, 1)], 1)
                 for name, f in (("embedding", model), ("penultimate", model.features))}
    for name, layer in res["layers"].items():
        ref = spectral_reference(feats[name].double().numpy())
        got = {k: layer[k] for k in ref}
        if ref["alpha_req"] is None:
            assert got.pop("alpha_req") is None
            assert "collapsed" in layer["spectral_undefined"]["alpha_req"]
            ref.pop("alpha_req")
        assert got == pytest.approx(ref, rel=1e-4), name
        assert layer["lidar"] == pytest.approx(
            lidar_reference(pairs[name].double().numpy()), rel=1e-4), name
    # d = 3 leaves 2 eigenvalues in alpha-ReQ's range 2..3: undefined, with the reason
    assert res["layers"]["penultimate"]["alpha_req"] is None
    no_pairs = ev.evaluate_encoder(model, train, test, transform=transform, weighted_k=20,
                                   progress=False)["layers"]["embedding"]
    assert no_pairs["lidar"] is None and "lidar" not in no_pairs["spectral_undefined"]
    assert no_pairs["rankme"] == res["layers"]["embedding"]["rankme"]
    path = ev.save_results(res, tmp_path / "eval.json")
    assert ev.load_results(path)["layers"]["penultimate"]["rankme"] == pytest.approx(
        res["layers"]["penultimate"]["rankme"])
