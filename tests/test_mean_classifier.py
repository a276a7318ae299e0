"""Tests for the mean (nearest class centroid, cosine) classifier."""

from __future__ import annotations

import math

import pytest
import torch

from alignuniform.evaluate import MeanClassifier, mean_classifier_accuracy
from tests.helpers import MeanColour, synthetic_images


def _brute_force(train_x, train_y, test_x, normalize_centroids=True):
    """Centroids by a Python loop over classes, every similarity at once."""
    train_x = train_x.double() / train_x.double().norm(dim=1, keepdim=True)
    test_x = test_x.double() / test_x.double().norm(dim=1, keepdim=True)
    classes = int(train_y.max()) + 1
    scores = torch.full((len(test_x), classes), -math.inf, dtype=torch.float64)
    for c in range(classes):
        rows = train_x[train_y == c]
        if len(rows):
            mu = rows.mean(0)
            if normalize_centroids:
                mu = mu / mu.norm()
            scores[:, c] = test_x @ mu
    return scores.argmax(1)


def _data(seed=0, n=300, m=200, d=6, classes=5):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 1.5
    train_y = torch.randint(0, classes, (n,), generator=g)
    test_y = torch.randint(0, classes, (m,), generator=g)
    scale = torch.rand(n, 1, generator=g) * 3 + 0.1  # norms differ: cosine must ignore them
    train_x = (centres[train_y] + torch.randn(n, d, generator=g)) * scale
    test_x = centres[test_y] + torch.randn(m, d, generator=g)
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_brute_force_streamed_in_any_chunks(normalize):
    train_x, train_y, test_x, test_y = _data()
    expected = _brute_force(train_x, train_y, test_x, normalize)
    for chunk in (1, 7, 64, 10_000):
        clf = MeanClassifier(normalize_centroids=normalize)
        for i in range(0, len(train_x), chunk):
            clf.update(train_x[i : i + chunk], train_y[i : i + chunk])
        assert torch.equal(clf.predict(test_x, chunk_size=chunk), expected)
    acc = mean_classifier_accuracy(train_x, train_y, test_x, test_y,
                                   normalize_centroids=normalize, chunk_size=33)
    assert acc == pytest.approx(float((expected == test_y).double().mean()))
    assert acc > 0.5  # well-separated clusters: far above the 20 % of chance


def test_normalised_and_raw_centroids_can_disagree():
    # class 0: a tight cluster at e0; class 1: spread around e0+e1, so its mean is short
    train_x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [1.0, 0.0], [1.0, 0.05]])
    train_y = torch.tensor([0, 0, 1, 1, 1])
    q = torch.tensor([[1.0, 0.3]])
    cos = MeanClassifier().update(train_x, train_y).predict(q)
    raw = MeanClassifier(normalize_centroids=False).update(train_x, train_y).predict(q)
    assert cos.tolist() == _brute_force(train_x, train_y, q).tolist()
    assert raw.tolist() == _brute_force(train_x, train_y, q, False).tolist()
    assert (cos.item(), raw.item()) == (1, 0)


def test_agrees_with_sklearn_nearest_centroid_where_equivalent():
    # Rows on the sphere whose class means have equal norms: then the nearest Euclidean
    # centroid (sklearn) is the nearest centroid in angle.
    sklearn = pytest.importorskip("sklearn.neighbors")
    g = torch.Generator().manual_seed(1)
    d, classes, per = 8, 4, 60
    basis = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    x, y = [], []
    for c in range(classes):
        off = torch.randn(per, d, generator=g)
        off -= (off @ basis[c]).unsqueeze(1) * basis[c]  # orthogonal to the class direction
        off = off / off.norm(dim=1, keepdim=True)
        pts = 0.8 * basis[c] + 0.6 * torch.cat([off, -off])  # symmetric: mean = 0.8 * e_c
        x.append(pts)
        y += [c] * len(pts)
    x, y = torch.cat(x), torch.tensor(y)
    queries = torch.nn.functional.normalize(torch.randn(500, d, generator=g), dim=1)
    ref = sklearn.NearestCentroid().fit(x.numpy(), y.numpy()).predict(queries.numpy())
    ours = MeanClassifier().update(x, y).predict(queries)
    assert ours.tolist() == ref.tolist()


def test_unseen_class_is_never_predicted_and_ties_go_low():
    clf = MeanClassifier(num_classes=4).update(torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
                                               torch.tensor([1, 3]))
    assert clf.predict(torch.tensor([[0.0, 1.0], [-1.0, 0.0]])).tolist() == [1, 1]
    assert torch.isinf(clf.scores(torch.ones(1, 2))[0, [0, 2]]).all()


def test_bad_input():
    clf = MeanClassifier(num_classes=2)
    with pytest.raises(ValueError, match="seen no training"):
        clf.predict(torch.ones(2, 3))
    with pytest.raises(ValueError, match="out of range"):
        clf.update(torch.ones(2, 3), torch.tensor([0, 2]))
    clf.update(torch.ones(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="dimensions"):
        clf.update(torch.ones(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="negative"):
        MeanClassifier().update(torch.ones(2, 3), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="NaN"):
        MeanClassifier().update(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0]))


@pytest.mark.usefixtures("one_thread")
def test_evaluate_encoder_reports_the_mean_classifier_and_the_table_prints_it():
    from alignuniform.cli.eval import format_table
    from alignuniform.data import build_recipe
    from alignuniform.evaluate import evaluate_encoder, extract_features
    from alignuniform.evaluate.features import Mapped

    model, train, test = MeanColour(), synthetic_images("train", 120), synthetic_images("test", 60)
    transform = build_recipe("cifar10_eval")
    res = evaluate_encoder(model, train, test, transform=transform, weighted_k=20,
                           progress=False)
    feats = [extract_features(model, Mapped(s, transform), progress=False) for s in (train, test)]
    for name, layer in res["layers"].items():
        assert layer["mean_acc"] == mean_classifier_accuracy(
            feats[0].layer(name), feats[0].labels, feats[1].layer(name), feats[1].labels)
    # the four classes differ by mean colour, the penultimate feature itself
    assert res["layers"]["penultimate"]["mean_acc"] >= 0.9
    res["checkpoint"] = {"path": "ck.pt", "model": "pool", "random_init": False}
    res["data"] = {"name": "synthetic", "test_split": "test"}
    table = format_table(res).splitlines()
    assert table[1].split()[5] == "mean"
    pen = next(line for line in table if line.startswith("penultimate")).split()
    assert pen[5] == f"{100 * res['layers']['penultimate']['mean_acc']:.1f}%"
