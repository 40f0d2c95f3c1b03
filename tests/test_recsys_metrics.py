"""recall@K / ndcg@K == a brute-force numpy computation; BPR, propagation and model pieces."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiered.batch import Block
from tiered.recsys.graph import Graph, block_matrices, block_matrix, edge_weights
from tiered.sampling import NeighborSampler
from tiered.recsys.loss import PairBatch, bpr_loss, choose_negatives
from tiered.recsys.metrics import InteractionIndex, evaluate_ranking
from tiered.recsys.models import LightGCN, SAGERecommender, build_link_model
from tiered.recsys.spmm import SparseMatrix, spmm


def _brute_force(users, items, train, test, k):
    """LightGCN's reference computation, written plainly."""
    scores = users @ items.T
    for u, i in train:
        scores[u, i] = -np.inf
    recalls, ndcgs = [], []
    for u in range(len(users)):
        truth = set(test[test[:, 0] == u, 1].tolist())
        if not truth:
            continue
        top = np.argsort(-scores[u], kind="stable")[:k]
        hit = np.array([t in truth for t in top], dtype=float)
        recalls.append(hit.sum() / len(truth))
        disc = 1.0 / np.log2(np.arange(2, k + 2))
        idcg = disc[:min(k, len(truth))].sum()
        ndcgs.append((hit * disc[:len(hit)]).sum() / idcg)
    return np.mean(recalls), np.mean(ndcgs), len(recalls)


def _toy(seed, nu=37, ni=53, d=6, n_train=300, n_test=120):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, nu, n_train + n_test),
                                rng.integers(0, ni, n_train + n_test)], 1), axis=0)
    pairs = pairs[rng.permutation(len(pairs))]
    train, test = pairs[:n_train], pairs[n_train:]
    return (rng.standard_normal((nu, d)).astype(np.float32),
            rng.standard_normal((ni, d)).astype(np.float32), train, test)


@pytest.mark.parametrize("seed,k,max_scores", [(0, 20, 1 << 20), (1, 5, 53), (2, 60, 200)])
def test_ranking_metrics_equal_brute_force(seed, k, max_scores):
    users, items, train, test = _toy(seed)
    nu, ni = len(users), len(items)
    m = evaluate_ranking(users, items, InteractionIndex(train, nu, ni), InteractionIndex(test, nu, ni),
                         k=k, max_scores=max_scores)       # small max_scores: many chunks
    r, n, count = _brute_force(users, items, train, test, min(k, ni))
    assert m.users == count
    assert m.recall == pytest.approx(r, abs=1e-12)
    assert m.ndcg == pytest.approx(n, abs=1e-12)
    assert m.as_dict()[f"recall@{k}"] == m.recall


def test_metrics_reject_out_of_range_pairs():
    with pytest.raises(ValueError, match=r"test: \(user, item\) pairs must lie in \[0, 3\) x \[0, 4\)"):
        InteractionIndex(np.array([[0, 4]]), 3, 4, "test")
    idx = InteractionIndex(np.array([[0, 1]]), 3, 4)
    with pytest.raises(ValueError, match="embeddings are 2 users"):
        evaluate_ranking(np.zeros((2, 2), np.float32), np.zeros((4, 2), np.float32), idx, idx)


def test_spmm_forward_and_backward_equal_dense():
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 30, 200), rng.integers(0, 12, 200)
    w = rng.random(200).astype(np.float32)
    a = SparseMatrix.from_edges(src, dst, w, 30, 12)
    dense = np.zeros((12, 30), np.float64)
    np.add.at(dense, (dst, src), w)
    h = torch.randn(30, 5, dtype=torch.float32, requires_grad=True)
    out = spmm(a, h)
    np.testing.assert_allclose(out.detach().numpy(), dense @ h.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = torch.randn(12, 5)
    out.backward(g)
    np.testing.assert_allclose(h.grad.numpy(), dense.T @ g.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexError, match="edges out of range"):
        SparseMatrix.from_edges(np.array([30]), np.array([0]), np.ones(1), 30, 12)


def _toy_graph():
    """A user-item graph (3 users, 4 items) with both directions, as CSC."""
    pairs = np.array([[0, 0], [0, 1], [1, 1], [1, 2], [2, 3], [2, 0]])
    n = 7
    src = np.concatenate([pairs[:, 0], pairs[:, 1] + 3])
    dst = np.concatenate([pairs[:, 1] + 3, pairs[:, 0]])
    order = np.lexsort((src, dst))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    return Graph(indptr, src[order].astype(np.int32), 3, 4), src, dst


def test_lightgcn_full_graph_equals_dense_formula_and_blocks_agree():
    g, src, dst = _toy_graph()
    n = g.num_nodes
    adj = np.zeros((n, n))
    adj[dst, src] = 1
    d = adj.sum(1)
    norm = adj / np.sqrt(np.outer(d, d))
    x = np.random.default_rng(1).standard_normal((n, 4)).astype(np.float32)
    ref, h = x.astype(np.float64), x.astype(np.float64)
    for _ in range(2):
        h = norm @ h
        ref = ref + h
    ref /= 3
    got = LightGCN(2).full_graph(torch.from_numpy(x), g).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # one full-neighbourhood block over all nodes gives the same layer
    deg = torch.from_numpy(g.degree)
    blk = Block(torch.from_numpy(np.stack([src, dst])), n, n, deg)
    z = LightGCN(1)(torch.from_numpy(x), [blk]).numpy()
    np.testing.assert_allclose(z, (x + norm @ x) / 2, rtol=1e-5, atol=1e-6)


def test_sampled_weights_are_unbiased_scaled():
    # dst 0 has degree 4 in the graph but 2 sampled neighbours: weights scale by 4/2
    w = edge_weights(np.array([1, 2]), np.array([0, 0]), np.array([4, 1, 9]), np.array([4]), 1, "sym")
    np.testing.assert_allclose(w, [2 / np.sqrt(4 * 1), 2 / np.sqrt(4 * 9)], rtol=1e-6)
    np.testing.assert_allclose(edge_weights(np.array([1, 2]), np.array([0, 0]), np.zeros(3, np.int64),
                                            np.zeros(1, np.int64), 1, "mean"), [0.5, 0.5])
    blk = Block(torch.tensor([[1], [0]]), 2, 1, None)
    with pytest.raises(ValueError, match="src_deg"):
        block_matrix(blk, "sym")


def test_bpr_loss_and_hard_negatives():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]], requires_grad=True)
    # user 0, positive 1, candidates 2 (score 0) and 3 (score 2): DNS keeps 3
    pairs = PairBatch.from_label_index(torch.tensor([[0, 0, 0], [1, 2, 3]]), 1)
    assert pairs.neg.shape == (1, 2)
    assert int(choose_negatives(z, pairs)[0]) == 3
    total, bpr, l2 = (v.item() for v in bpr_loss(z, z, pairs, reg=0.5))
    assert bpr == pytest.approx(np.log1p(np.exp(2.0 - 1.0)))
    assert l2 == pytest.approx(0.5 * (1 + 1 + 4))
    assert total == pytest.approx(bpr + 0.25 * 6)
    with pytest.raises(ValueError, match="at least one negative"):
        PairBatch.from_label_index(torch.tensor([[0], [1]]), 1)


def test_link_models_shapes_and_depth_checks():
    g, src, dst = _toy_graph()
    n = g.num_nodes
    blk = Block(torch.from_numpy(np.stack([src, dst])), n, n, torch.from_numpy(g.degree))
    x = torch.randn(n, 8)
    sage = build_link_model("sage", 8, 8, 2)
    assert isinstance(sage, SAGERecommender)
    assert sage(x, [blk, blk]).shape == (n, 8)
    assert sage.full_graph(x, g).shape == (n, 8)
    with pytest.raises(ValueError, match="has 2 layers but the batch has 1 blocks"):
        sage(x, [blk])
    with pytest.raises(ValueError, match="num_layers must be 1..6"):
        LightGCN(7)
    with pytest.raises(ValueError, match="need the 'sage' encoder"):
        build_link_model("lightgcn", 10, 8, 3)


@pytest.mark.parametrize("fanouts", [[-1, -1, -1], [3, 2, 2]])
def test_nested_block_matrices_equal_separate_ones(fanouts):
    g, _, _ = _toy_graph()
    s = NeighborSampler(g.indptr, g.indices, fanouts, seed=1)
    b = s.sample_edges([np.array([[0, 3], [1, 4]])], [0], num_neg=1, neg_range=(3, 7))[0]
    deg = torch.from_numpy(g.degree)[torch.from_numpy(b.n_id)]
    blocks = [blk.with_degrees(deg) for blk in b.blocks]
    shared = block_matrices(blocks, "sym")
    assert shared[1].ptr is shared[0].ptr                   # inner layers reuse the outer matrix
    x = torch.randn(len(b.n_id), 4)
    for blk, a in zip(blocks, shared):
        own = block_matrix(blk, "sym")
        h1 = x[:blk.num_src].clone().requires_grad_()
        h2 = x[:blk.num_src].clone().requires_grad_()
        y1, y2 = spmm(a, h1), spmm(own, h2)
        assert torch.equal(y1, y2)
        g_out = torch.randn_like(y1)
        y1.backward(g_out)
        y2.backward(g_out)
        assert torch.equal(h1.grad, h2.grad)
