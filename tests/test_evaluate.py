"""Tests for alignuniform.evaluate: probes, k-NN, held-out alignment/uniformity, the pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignuniform import evaluate as ev
from alignuniform.evaluate.probe import fit_logreg


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine's two cores are shared: one intra-op thread avoids oversubscription
    that makes these small problems ten times slower. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

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
    assert set(res["val_accuracy"]) == {f"{w:g}" for w in grid}
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
