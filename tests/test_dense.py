"""alignuniform.dense: pair schemes, dense metrics and losses."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from alignuniform import dense, metrics
from alignuniform.losses import LossCombination, uniform_loss


def unit_map(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=1)


# ----------------------------------------------------------------- geometry, brute force


def brute_centre(box, flip, h, w, r, c):
    x0, y0, x1, y1 = box
    u = (c + 0.5) / w
    if flip:
        u = 1 - u
    v = (r + 0.5) / h
    return x0 + u * (x1 - x0), y0 + v * (y1 - y0), math.hypot((x1 - x0) / w, (y1 - y0) / h)


def brute_pairs(boxes1, boxes2, flips1, flips2, s1, s2, mode, threshold=0.7):
    out = set()
    for b, (bx1, bx2, fl1, fl2) in enumerate(zip(boxes1, boxes2, flips1, flips2, strict=True)):
        for r1, c1 in itertools.product(range(s1[0]), range(s1[1])):
            x, y, d1 = brute_centre(bx1, fl1, *s1, r1, c1)
            best, best_j = math.inf, None
            for r2, c2 in itertools.product(range(s2[0]), range(s2[1])):
                x2, y2, d2 = brute_centre(bx2, fl2, *s2, r2, c2)
                dist = math.hypot(x - x2, y - y2)
                j = r2 * s2[1] + c2
                if mode == "threshold" and dist < threshold * max(d1, d2):
                    out.add((b, r1 * s1[1] + c1, j))
                if dist < best:
                    best, best_j = dist, j
            inside = bx2[0] <= x <= bx2[2] and bx2[1] <= y <= bx2[3]
            if mode == "nearest" and inside:
                out.add((b, r1 * s1[1] + c1, best_j))
    return out


BOXES1 = [[0, 0, 16, 16], [4, 2, 30, 28], [0, 0, 32, 32], [0, 0, 10, 10], [3.5, 1.25, 20, 31]]
BOXES2 = [[8, 8, 24, 24], [0, 0, 20, 32], [0, 0, 32, 32], [20, 20, 32, 32], [2, 0, 32, 17.5]]
FLIPS1 = [False, True, False, False, True]
FLIPS2 = [False, False, True, False, True]


@pytest.mark.parametrize("mode", ["threshold", "nearest"])
@pytest.mark.parametrize("shapes", [((4, 4), (4, 4)), ((3, 5), (6, 2))])
def test_geometric_pairs_match_brute_force(mode, shapes):
    s1, s2 = shapes
    pairs = dense.geometric_pairs(torch.tensor(BOXES1, dtype=torch.float32),
                                  torch.tensor(BOXES2, dtype=torch.float32), s1, s2,
                                  torch.tensor(FLIPS1), torch.tensor(FLIPS2),
                                  image_size=(32, 32), mode=mode)
    expected = brute_pairs(BOXES1, BOXES2, FLIPS1, FLIPS2, s1, s2, mode)
    assert pairs.as_set() == expected
    assert len(expected) > 0
    # crops that do not overlap (image 3): no pairs for that image, and no error
    assert all(b != 3 for b, _, _ in expected)


def test_identical_crops_pair_each_location_with_itself():
    box = torch.tensor([[2.0, 3.0, 30.0, 31.0]])
    for mode in ("threshold", "nearest"):
        pairs = dense.geometric_pairs(box, box, (5, 5), (5, 5), mode=mode)
        assert pairs.as_set() == {(0, i, i) for i in range(25)}


def test_flip_mirrors_columns():
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0]])
    pairs = dense.geometric_pairs(box, box, (4, 4), (4, 4), torch.tensor([False]),
                                  torch.tensor([True]), mode="nearest")
    assert pairs.as_set() == {(0, r * 4 + c, r * 4 + (3 - c)) for r in range(4) for c in range(4)}


def test_disjoint_crops_give_empty_pairs():
    b1, b2 = torch.tensor([[0.0, 0.0, 10.0, 10.0]]), torch.tensor([[20.0, 20.0, 32.0, 32.0]])
    for mode in ("threshold", "nearest"):
        pairs = dense.geometric_pairs(b1, b2, (7, 7), (7, 7), image_size=(32, 32), mode=mode)
        assert pairs.is_empty and len(pairs) == 0
    f1, f2 = unit_map(1, 8, 7, 7, seed=1), unit_map(1, 8, 7, 7, seed=2)
    f1.requires_grad_()
    loss = dense.dense_align_loss(f1, f2, pairs)
    assert loss.item() == 0.0 and not math.isnan(loss.item())
    loss.backward()
    assert torch.equal(f1.grad, torch.zeros_like(f1))
    with pytest.raises(ValueError, match="no positive"):
        dense.dense_align_loss(f1, f2, pairs, on_empty="raise")
    with pytest.raises(ValueError, match="no positive"):
        dense.dense_alignment(f1, f2, pairs)
    neg = unit_map(5, 8, 1, 1).flatten(1)
    assert dense.dense_contrastive_loss(f1, f2, pairs, negatives=neg).item() == 0.0


@pytest.mark.parametrize(
    "box, match",
    [([[0.0, 0.0, 0.0, 10.0]], "zero or negative area"),
     ([[5.0, 5.0, 4.0, 10.0]], "zero or negative area"),
     ([[-1.0, 0.0, 10.0, 10.0]], "outside the image"),
     ([[0.0, 0.0, 33.0, 10.0]], "outside the image"),
     ([[0.0, float("nan"), 3.0, 10.0]], "NaN")],
)
def test_bad_boxes(box, match):
    good = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    with pytest.raises(ValueError, match=match):
        dense.geometric_pairs(torch.tensor(box), good, (4, 4), (4, 4), image_size=(32, 32))


def test_bad_shapes_and_batches():
    good = torch.tensor([[0.0, 0.0, 16.0, 16.0]])
    with pytest.raises(ValueError, match="views"):
        dense.geometric_pairs(good, good.repeat(2, 1), (4, 4), (4, 4))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        dense.geometric_pairs(good, good, (0, 4), (4, 4))
    pairs = dense.geometric_pairs(good, good, (4, 4), (4, 4))
    f = unit_map(1, 8, 4, 4)
    with pytest.raises(ValueError, match="pairs were built"):
        dense.dense_align_loss(f, unit_map(1, 8, 5, 5), pairs)
    with pytest.raises(ValueError, match="channels"):
        dense.dense_align_loss(f, unit_map(1, 9, 4, 4), pairs)
    with pytest.raises(ValueError, match="dense map"):
        dense.dense_align_loss(f.flatten(1), f, pairs)
    with pytest.raises(ValueError, match="g1 and g2"):
        dense.feature_argmax_pairs(f, unit_map(2, 8, 4, 4))


# ----------------------------------------------------------------- feature schemes


def test_feature_argmax_known_answer():
    # view 2 is view 1 with its 3x3 locations permuted: the argmax recovers the permutation
    f1 = unit_map(2, 16, 3, 3, seed=3)
    perm = torch.tensor([4, 0, 8, 1, 7, 2, 6, 3, 5])
    f2 = f1.flatten(2)[:, :, perm].reshape(2, 16, 3, 3)
    pairs = dense.feature_argmax_pairs(f1, f2)
    inverse = torch.argsort(perm)
    assert pairs.as_set() == {(b, i, int(inverse[i])) for b in range(2) for i in range(9)}
    # different spatial sizes are allowed: every view-1 location gets one partner
    pairs = dense.feature_argmax_pairs(f1, unit_map(2, 16, 2, 5))
    assert len(pairs) == 18 and pairs.shape2 == (2, 5)


def test_mutual_nn_known_answer():
    # one-hot features: loc 0 <-> 1 mutual (sim 1); loc 1 and 2 of view 1 both prefer loc 0
    # of view 2, which prefers loc 1 of view 1 (sim 1 > 0.8)
    e = torch.eye(4)
    v1 = torch.stack([e[0], e[1], 0.6 * e[1] + 0.8 * e[2]], 1)  # (4, 3): locations 0..2
    v2 = torch.stack([e[1], e[0], e[3]], 1)
    f1, f2 = v1.reshape(1, 4, 1, 3), v2.reshape(1, 4, 1, 3)
    assert dense.mutual_nn_pairs(f1, f2, threshold=0.5).as_set() == {(0, 0, 1), (0, 1, 0)}
    assert dense.feature_argmax_pairs(f1, f2).as_set() == {(0, 0, 1), (0, 1, 0), (0, 2, 0)}
    # a threshold above the similarities keeps nothing: an empty result, not an error
    low = torch.stack([0.6 * e[0] + 0.8 * e[3], e[2], e[2]], 1).reshape(1, 4, 1, 3)
    assert dense.mutual_nn_pairs(f1, low, threshold=0.7).as_set() == {(0, 2, 1)}  # sim 0.8
    assert dense.mutual_nn_pairs(f1, low, threshold=0.9).as_set() == set()
    with pytest.raises(ValueError, match="cosine"):
        dense.mutual_nn_pairs(f1, f2, threshold=2.0)


def test_precision_recall():
    box = torch.tensor([[0.0, 0.0, 32.0, 32.0]])
    truth = dense.geometric_pairs(box, box, (3, 3), (3, 3), mode="nearest")
    f = unit_map(1, 8, 3, 3)
    assert dense.pair_precision_recall(dense.feature_argmax_pairs(f, f), truth) == (1.0, 1.0)


# ----------------------------------------------------------------- metrics


def test_dense_metrics_equal_global_when_one_location():
    x, y = unit_map(40, 16, seed=4), unit_map(40, 16, seed=5)
    f1, f2 = (10 * x)[:, :, None, None], y[:, :, None, None]
    boxes = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).repeat(40, 1)
    pairs = dense.geometric_pairs(boxes, boxes, (1, 1), (1, 1))
    assert len(pairs) == 40
    assert dense.dense_alignment(f1, f2, pairs) == pytest.approx(metrics.alignment(x, y), 1e-6)
    u = dense.dense_uniformity(f1)
    assert u.all_pairs == pytest.approx(metrics.uniformity(x), abs=1e-6)
    assert u.cross_image == pytest.approx(u.all_pairs, abs=1e-9)
    assert dense.dense_align_loss(x[:, :, None, None], f2, pairs).item() == pytest.approx(
        torch.nn.functional.mse_loss(x, y, reduction="sum").item() / 40, rel=1e-5)
    assert dense.dense_uniform_loss(f2, exclude_same_image=True).item() == pytest.approx(
        uniform_loss(y).item(), abs=1e-5)


def brute_uniformity(f, t=2.0, exclude_same_image=False):
    b, c, h, w = f.shape
    x = f.permute(0, 2, 3, 1).reshape(-1, c).double()
    img = torch.arange(b).repeat_interleave(h * w)
    d2 = torch.cdist(x, x).pow(2)
    i, j = torch.triu_indices(len(x), len(x), 1)
    keep = img[i] != img[j] if exclude_same_image else torch.ones(len(i), dtype=torch.bool)
    return torch.exp(-t * d2[i[keep], j[keep]]).mean().log()


def test_dense_uniformity_exact_and_sampled():
    f = unit_map(5, 8, 3, 4, seed=6)
    u = dense.dense_uniformity(f)
    f64 = F.normalize(f.double(), dim=1)
    assert u.all_pairs == pytest.approx(brute_uniformity(f64).item(), abs=1e-10)
    cross = brute_uniformity(f64, exclude_same_image=True).item()
    assert u.cross_image == pytest.approx(cross, abs=1e-10)
    assert (u.n_locations, u.n_images) == (60, 5)
    s1 = dense.dense_uniformity(f, n_locations=20, seed=3)
    assert s1 == dense.dense_uniformity(f, n_locations=20, seed=3)  # seeded
    assert s1.n_locations == 20
    x, image = dense.flatten_locations(f, 20, seed=3)
    assert s1.all_pairs == pytest.approx(metrics.uniformity(x), abs=1e-6)
    one = dense.dense_uniformity(f[:1])
    assert one.cross_image is None and math.isfinite(one.all_pairs)


# ----------------------------------------------------------------- losses vs float64


def test_dense_uniform_loss_gradient_vs_float64():
    f = unit_map(4, 6, 3, 3, seed=7)
    for exclude in (False, True):
        x = f.clone().requires_grad_()
        loss = dense.dense_uniform_loss(x, exclude_same_image=exclude)
        loss.backward()
        ref_x = f.double().requires_grad_()
        ref = brute_uniformity(ref_x, exclude_same_image=exclude)
        ref.backward()
        assert loss.item() == pytest.approx(ref.item(), abs=1e-5)
        torch.testing.assert_close(x.grad.double(), ref_x.grad, atol=1e-5, rtol=1e-4)


def brute_align(f1, f2, pairs, alpha):
    total, wsum = 0.0, 0.0
    for b, i, j, w in zip(pairs.batch, pairs.i, pairs.j, pairs.weight, strict=True):
        d = f1[b].flatten(1)[:, i] - f2[b].flatten(1)[:, j]
        total = total + w.double() * d.norm().pow(alpha)
        wsum += float(w)
    return total / wsum


def brute_contrastive(q, k, pairs, tau, negatives=None):
    losses = []
    for b, i, j in zip(pairs.batch.tolist(), pairs.i.tolist(), pairs.j.tolist(), strict=True):
        a, p = q[b].flatten(1)[:, i], k[b].flatten(1)[:, j]
        if negatives is None:
            negs = torch.cat([k[o].flatten(1).T for o in range(q.shape[0]) if o != b])
        else:
            negs = negatives
        logits = torch.cat([(a @ p)[None], negs @ a]) / tau
        losses.append(torch.logsumexp(logits, 0) - logits[0])
    return torch.stack(losses).mean()


@pytest.mark.parametrize("scheme", ["threshold", "argmax"])
def test_dense_align_and_contrastive_gradients_vs_float64(scheme):
    q, k = unit_map(3, 5, 4, 4, seed=8), unit_map(3, 5, 3, 3, seed=9)
    if scheme == "threshold":
        boxes1 = torch.tensor([[0.0, 0.0, 20.0, 20.0], [4.0, 4.0, 32.0, 32.0], [0, 0, 32, 32]])
        boxes2 = torch.tensor([[6.0, 6.0, 30.0, 30.0], [0.0, 0.0, 24.0, 24.0], [8, 0, 32, 24]])
        pairs = dense.geometric_pairs(boxes1, boxes2, (4, 4), (3, 3), torch.tensor([0, 1, 0]),
                                      torch.tensor([0, 0, 1]))
    else:
        pairs = dense.feature_argmax_pairs(q, k)
    assert len(pairs) > 3
    queue = unit_map(7, 5, 1, 1, seed=10).flatten(1)
    cases = [
        (lambda a, b: dense.dense_align_loss(a, b, pairs),
         lambda a, b: brute_align(a, b, pairs, 2.0)),
        (lambda a, b: dense.dense_align_loss(a, b, pairs, alpha=1.5),
         lambda a, b: brute_align(a, b, pairs, 1.5)),
        (lambda a, b: dense.dense_contrastive_loss(a, b, pairs, tau=0.2),
         lambda a, b: brute_contrastive(a, b, pairs, 0.2)),
        (lambda a, b: dense.dense_contrastive_loss(a, b, pairs, tau=0.2, negatives=queue),
         lambda a, b: brute_contrastive(a, b, pairs, 0.2, queue.double())),
    ]
    for fn, ref_fn in cases:
        a, b = q.clone().requires_grad_(), k.clone().requires_grad_()
        loss = fn(a, b)
        loss.backward()
        ra, rb = q.double().requires_grad_(), k.double().requires_grad_()
        ref = ref_fn(ra, rb)
        ref.backward()
        assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
        torch.testing.assert_close(a.grad.double(), ra.grad, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(b.grad.double(), rb.grad, atol=1e-5, rtol=1e-4)


def test_sampled_cross_image_uniformity_vs_brute_force():
    # a sample has images with different numbers of locations: the padded same-image sums
    f = unit_map(6, 5, 2, 3, seed=16, dtype=torch.float64)
    x, image = dense.flatten_locations(f, 17, generator=torch.Generator().manual_seed(5))
    assert len(torch.bincount(image).unique()) > 1
    i, j = torch.triu_indices(17, 17, 1)
    keep = image[i] != image[j]
    ref = torch.exp(-2 * (x[i[keep]] - x[j[keep]]).pow(2).sum(1)).mean().log()
    loss = dense.dense_uniform_loss(f, n_locations=17, exclude_same_image=True,
                                    generator=torch.Generator().manual_seed(5))
    assert loss.item() == pytest.approx(ref.item(), abs=1e-12)
    metric = dense.dense_uniformity(f, n_locations=17, seed=5)
    assert metric.cross_image == pytest.approx(ref.item(), abs=1e-12)


def test_sampled_uniform_loss_is_seeded():
    f = unit_map(4, 8, 3, 3, seed=11)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = dense.dense_uniform_loss(f, n_locations=10, generator=g1)
    b = dense.dense_uniform_loss(f, n_locations=10, generator=g2)
    assert a.item() == b.item()


def test_dense_loss_combination():
    f1, f2 = unit_map(4, 8, 3, 3, seed=12), unit_map(4, 8, 3, 3, seed=13)
    x, y = unit_map(4, 8, seed=14), unit_map(4, 8, seed=15)
    pairs = dense.feature_argmax_pairs(f1, f2)
    crit = dense.DenseLossCombination(w_align=1, w_uniform=1, w_contrastive=1,
                                      global_loss=LossCombination(w_contrastive=1, tau=0.2))
    out = crit(f1.requires_grad_(), f2, pairs, x, y)
    dense_part = (dense.dense_align_loss(f1, f2, pairs)
                  + (dense.dense_uniform_loss(f1) + dense.dense_uniform_loss(f2)) / 2
                  + dense.dense_contrastive_loss(f1, f2, pairs))
    glob = LossCombination(w_contrastive=1, tau=0.2)(x, y)["loss"]
    assert out["loss"].item() == pytest.approx(0.5 * glob.item() + 0.5 * dense_part.item(),
                                               rel=1e-5)
    out["loss"].backward()
    assert f1.grad is not None and int(out["dense_pairs"]) == 36
    with pytest.raises(ValueError, match="pass x and y"):
        crit(f1, f2, pairs)
    with pytest.raises(ValueError, match="at least one"):
        dense.DenseLossCombination()


# ------------------------------------------------------------- DenseCL's loss with a queue


def densecl_dense_loss(q_b, k_b, q_grid, k_grid, queue2, tau):
    """DenseCL's ``densecl.py`` forward, dense half, transcribed (float64, its shapes:
    maps ``(N, C, S^2)``, queue2 ``(C, K)``): match each query location to the key location of
    most similar backbone feature, positive logit = query . matched key, negatives =
    query . queue2, cross-entropy with label 0 over all N S^2 query locations."""
    q_b, k_b = F.normalize(q_b, dim=1), F.normalize(k_b, dim=1)
    backbone_sim_matrix = torch.matmul(q_b.permute(0, 2, 1), k_b)
    densecl_sim_ind = backbone_sim_matrix.max(dim=2)[1]
    indexed_k_grid = torch.gather(
        k_grid, 2, densecl_sim_ind.unsqueeze(1).expand(-1, k_grid.size(1), -1))
    densecl_sim_q = (q_grid * indexed_k_grid).sum(1)
    l_pos_dense = densecl_sim_q.view(-1).unsqueeze(-1)
    q_grid = q_grid.permute(0, 2, 1).reshape(-1, q_grid.size(1))
    l_neg_dense = torch.einsum("nc,ck->nk", [q_grid, queue2])
    logits = torch.cat([l_pos_dense, l_neg_dense], dim=1) / tau
    labels = torch.zeros(logits.shape[0], dtype=torch.long)
    return F.cross_entropy(logits, labels)


def test_dense_loss_with_a_queue_is_densecls_in_value_and_gradient():
    n, c, s, k = 3, 6, 3, 11
    q_grid, k_grid = unit_map(n, c, s, s, seed=30), unit_map(n, c, s, s, seed=31)
    q_b, k_b = unit_map(n, 5, s, s, seed=32), unit_map(n, 5, s, s, seed=33)
    queue = unit_map(k, c, 1, 1, seed=34).flatten(1)
    pairs = dense.feature_argmax_pairs(q_b, k_b)
    criterion = dense.DenseLossCombination(w_contrastive=1.0, tau=0.2)
    a = q_grid.clone().requires_grad_()
    ours = criterion(a, k_grid, pairs, negatives=queue)
    ours["loss"].backward()
    ref_q = q_grid.double().flatten(2).requires_grad_()
    ref = densecl_dense_loss(q_b.double().flatten(2), k_b.double().flatten(2), ref_q,
                             k_grid.double().flatten(2), queue.double().T, 0.2)
    ref.backward()
    assert ours["loss"].item() == pytest.approx(ref.item(), rel=1e-6)
    assert ours["dense_pairs"].item() == n * s * s  # every query location has its positive
    torch.testing.assert_close(a.grad.double().flatten(2), ref_q.grad, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("intra_batch", [True, False])
def test_dense_uniformity_with_a_queue_is_queries_against_the_bank(intra_batch):
    f, f2 = unit_map(2, 4, 3, 2, seed=35), unit_map(2, 4, 3, 2, seed=36)
    queue = unit_map(9, 4, 1, 1, seed=37).flatten(1)
    criterion = dense.DenseLossCombination(w_uniform=1.0, t=3.0, intra_batch=intra_batch)
    a = f.clone().requires_grad_()
    ours = criterion(a, f2, dense.feature_argmax_pairs(f, f2), negatives=queue)
    ours["loss"].backward()
    x = f.double().permute(0, 2, 3, 1).reshape(12, 4).requires_grad_()
    # the fork's query-queue distance, 2 - 2 q.k (equal on the sphere; its gradient has
    # no radial part), as queue_uniform_loss
    d2 = [2 - 2 * x[i] @ queue[j].double() for i in range(12) for j in range(9)]
    if intra_batch:  # every pair of query locations, same image or not
        d2 += [(x[i] - x[j]).pow(2).sum() for i in range(12) for j in range(i + 1, 12)]
    ref = torch.stack(d2).mul(-3.0).exp().mean().log()
    ref.backward()
    assert ours["loss"].item() == pytest.approx(ref.item(), rel=1e-6)
    torch.testing.assert_close(a.grad.double().permute(0, 2, 3, 1).reshape(12, 4), x.grad,
                               atol=1e-7, rtol=1e-5)
    with pytest.raises(ValueError, match="exclude_same_image does not apply with a queue"):
        dense.DenseLossCombination(w_uniform=1.0, exclude_same_image=True)(
            f, f2, dense.feature_argmax_pairs(f, f2), negatives=queue)
