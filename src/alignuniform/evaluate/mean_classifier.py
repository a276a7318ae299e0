"""The mean classifier: nearest class centroid under cosine similarity, with no training.

Arora, Khandeparkar, Khodak, Plevrakis & Saunshi (ICML 2019) judge a representation ``f``
by the mean classifier whose weight rows are the class means ``mu_c = E_{x ~ D_c} f(x)``.
Here, as for the k-NN, features are L2-normalised first, the centroid of class ``c`` is the
mean of its normalised training features, and a test feature goes to the class whose
centroid is nearest in angle, ``argmax_c <x/|x|, mu_c/|mu_c|>`` (``normalize_centroids=False``
scores ``<x/|x|, mu_c>`` instead: Arora et al.'s linear form on the normalised features).

Exact and streaming: the centroids are per-class sums accumulated one batch at a time
(``MeanClassifier.update``), so features never need to be held at once; prediction runs in
chunks. Ties go to the lowest class index; a class with no training feature is never
predicted.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from alignuniform.evaluate._inputs import check_features, check_labels, check_pair


class MeanClassifier:
    """Streaming nearest-centroid (cosine) classifier.

    Examples:
        >>> import torch
        >>> x, y = torch.eye(4), torch.tensor([0, 0, 1, 1])
        >>> clf = MeanClassifier()
        >>> for xb, yb in [(x[:2], y[:2]), (x[2:], y[2:])]:  # the training set, by batch
        ...     _ = clf.update(xb, yb)
        >>> clf.accuracy(x, y)
        1.0

    Args:
        num_classes: Number of classes; ``None`` grows the tables to the largest label seen.
        normalize_centroids: Compare with the normalised centroid (cosine to the centroid,
            default) or with the raw mean of the normalised features (Arora et al.'s
            linear scorer).
    """

    def __init__(self, num_classes: int | None = None, *, normalize_centroids: bool = True):
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive integer or None, got {num_classes}")
        self.num_classes = num_classes
        self.normalize_centroids = normalize_centroids
        self.sums: Tensor | None = None  # (C, D) float64 sums of normalised features
        self.counts: Tensor | None = None  # (C,) int64

    def _grow(self, classes: int, dim: int, device: torch.device) -> None:
        if self.sums is None:
            self.sums = torch.zeros(classes, dim, dtype=torch.float64, device=device)
            self.counts = torch.zeros(classes, dtype=torch.long, device=device)
        elif classes > self.sums.shape[0]:
            assert self.counts is not None  # set together with sums
            extra = classes - self.sums.shape[0]
            self.sums = torch.cat([self.sums, self.sums.new_zeros(extra, dim)])
            self.counts = torch.cat([self.counts, self.counts.new_zeros(extra)])

    def update(self, x: Tensor, y: Tensor) -> MeanClassifier:
        """Add a batch of training features ``x`` (N, D) with integer labels ``y`` (N,)."""
        x = check_features(x, "features")
        y = check_labels(y, x.shape[0], "labels").to(x.device)
        if self.sums is not None and x.shape[1] != self.sums.shape[1]:
            raise ValueError(
                f"features have {x.shape[1]} dimensions but earlier batches had "
                f"{self.sums.shape[1]}"
            )
        top = int(y.max()) + 1
        if self.num_classes is not None and top > self.num_classes:
            raise ValueError(f"label {top - 1} is out of range for num_classes={self.num_classes}")
        self._grow(self.num_classes or top, x.shape[1], x.device)
        assert self.sums is not None and self.counts is not None
        self.sums.index_add_(0, y, nn.functional.normalize(x.double(), dim=1))
        self.counts += torch.bincount(y, minlength=self.counts.shape[0])
        return self

    def centroids(self) -> Tensor:
        """(C, D) class means of the normalised features (zero rows for unseen classes)."""
        if self.sums is None:
            raise ValueError("the mean classifier has seen no training features; call update")
        assert self.counts is not None  # set together with sums
        return self.sums / self.counts.clamp(min=1).unsqueeze(1).to(self.sums.dtype)

    def scores(self, x: Tensor) -> Tensor:
        """(N, C) similarity of each normalised query to each class centroid; classes
        without training features score ``-inf``."""
        x = check_features(x, "queries")
        mu = self.centroids().to(x.device)
        if x.shape[1] != mu.shape[1]:
            raise ValueError(f"queries have {x.shape[1]} features but centroids {mu.shape[1]}")
        if self.normalize_centroids:
            mu = nn.functional.normalize(mu, dim=1)
        s = nn.functional.normalize(x.double(), dim=1) @ mu.T
        assert self.counts is not None  # centroids() checked that features were seen
        return s.masked_fill(self.counts.to(x.device) == 0, float("-inf"))

    def predict(self, x: Tensor, *, chunk_size: int = 8192) -> Tensor:
        """(N,) predicted labels, computed ``chunk_size`` queries at a time."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        x = check_features(x, "queries")
        return torch.cat([self.scores(x[i : i + chunk_size]).argmax(dim=1)
                          for i in range(0, x.shape[0], chunk_size)])

    def accuracy(self, x: Tensor, y: Tensor, *, chunk_size: int = 8192) -> float:
        """Fraction of ``x`` whose predicted label equals ``y``."""
        y = check_labels(y, check_features(x, "queries").shape[0], "test labels")
        pred = self.predict(x, chunk_size=chunk_size)
        return int((pred == y.to(pred.device)).sum()) / len(y)


def mean_classifier_accuracy(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    *,
    normalize_centroids: bool = True,
    chunk_size: int = 8192,
) -> float:
    """Accuracy on ``(test_x, test_y)`` of the mean classifier of ``(train_x, train_y)``.

    Centroids are accumulated ``chunk_size`` training rows at a time (exactly the sums a
    batch-by-batch :class:`MeanClassifier` gets); see the module docstring for the rule.
    """
    train_x, train_y, test_x, test_y = check_pair(train_x, train_y, test_x, test_y)
    clf = MeanClassifier(int(max(train_y.max(), test_y.max())) + 1,
                         normalize_centroids=normalize_centroids)
    for i in range(0, train_x.shape[0], chunk_size):
        clf.update(train_x[i : i + chunk_size], train_y[i : i + chunk_size])
    return clf.accuracy(test_x, test_y, chunk_size=chunk_size)
