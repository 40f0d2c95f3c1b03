"""Built-in models on a tiny graph equal a dense reference computation of their formula."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tiered.batch import Block
from tiered.models import GAT, GCN, GraphSAGE, build_model, resolve_model_class


def tiny_graph(n=7, seed=0):
    """A symmetric graph without self loops, its dense adjacency, and the full block."""
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, n, generator=g) < 0.4).float()
    a = ((a + a.t()) > 0).float()
    a.fill_diagonal_(0)
    a[0, :] = 0
    a[:, 0] = 0                                     # node 0 isolated: the empty-neighbourhood case
    dst, src = a.nonzero(as_tuple=True)             # a[i, j] = 1: edge j -> i
    return a, Block(torch.stack([src, dst]), n, n)


def test_sage_matches_dense():
    torch.manual_seed(0)
    a, block = tiny_graph()
    for in_dim, out_dim in ((5, 3), (3, 5)):        # project-before-mean and after
        x = torch.randn(a.shape[0], in_dim)
        m = GraphSAGE(in_dim, 4, out_dim, num_layers=1, dropout=0.0).eval()
        conv = m.convs[0]
        mean = (a @ x) / a.sum(1, keepdim=True).clamp(min=1)
        ref = mean @ conv.lin_l.weight.t() + conv.lin_l.bias + x @ conv.lin_r.weight.t()
        torch.testing.assert_close(m(x, [block]), ref, rtol=1e-5, atol=1e-5)


def test_gcn_matches_dense():
    torch.manual_seed(1)
    a, block = tiny_graph()
    x = torch.randn(a.shape[0], 5)
    m = GCN(5, 4, 3, num_layers=1, dropout=0.0).eval()
    conv = m.convs[0]
    ah = a + torch.eye(a.shape[0])
    dinv = ah.sum(1).rsqrt()
    ref = (dinv[:, None] * ah * dinv[None, :]) @ x @ conv.lin.weight.t() + conv.bias
    torch.testing.assert_close(m(x, [block]), ref, rtol=1e-5, atol=1e-5)


def test_gat_matches_dense():
    torch.manual_seed(2)
    a, block = tiny_graph()
    n, heads, ch = a.shape[0], 2, 3
    x = torch.randn(n, 5)
    m = GAT(5, heads * ch, 3, num_layers=2, dropout=0.0, heads=heads).eval()
    conv = m.convs[0]                               # concatenating layer
    h = (x @ conv.lin.weight.t()).view(n, heads, ch)
    mask = (a + torch.eye(n)) > 0
    outs = []
    for k in range(heads):
        s = (h[:, k] * conv.att_src[0, k]).sum(-1)
        d = (h[:, k] * conv.att_dst[0, k]).sum(-1)
        e = F.leaky_relu(d[:, None] + s[None, :], 0.2).masked_fill(~mask, float("-inf"))
        outs.append(torch.softmax(e, 1) @ h[:, k])
    ref = torch.cat(outs, 1) + conv.bias
    torch.testing.assert_close(conv(x, block), ref, rtol=1e-5, atol=1e-5)
    out = m(x, [block, block])
    assert out.shape == (n, 3) and torch.isfinite(out).all()


def test_two_layer_blocks_shrink_to_seeds():
    """Blocks whose destinations are a prefix of their sources: output has one row per seed."""
    torch.manual_seed(3)
    b0 = Block(torch.tensor([[3, 4, 5, 1], [0, 1, 2, 2]]), num_src=6, num_dst=3)
    b1 = Block(torch.tensor([[1, 2], [0, 0]]), num_src=3, num_dst=1)
    for name in ("sage", "gcn", "gat"):
        m = build_model(name, 4, 8, 2, num_layers=2, dropout=0.0)
        out = m(torch.randn(6, 4), [b0, b1])
        assert out.shape == (1, 2), name
        out.sum().backward()
        assert all(p.grad is not None for p in m.parameters()), name


def test_layer_count_mismatch_is_explained():
    m = GraphSAGE(4, 8, 2, num_layers=3)
    with pytest.raises(ValueError, match="3 layers but the batch has 1 blocks"):
        m(torch.randn(3, 4), [Block(torch.zeros(2, 0, dtype=torch.long), 3, 1)])


def test_resolve_model_by_path():
    assert resolve_model_class("gcn") is GCN
    assert resolve_model_class("tiered.models:GAT") is GAT
    with pytest.raises(ValueError, match="unknown model"):
        resolve_model_class("resnet")
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        resolve_model_class("tiered.models:Nope")


def test_gcn_on_sampled_blocks_with_graph_degrees_is_full_gcn():
    """Two GCN layers over full-neighbourhood blocks (with the graph's degrees attached, as
    the executor does) give the dense whole-graph GCN's output at the seeds."""
    import numpy as np
    from tiered.sampling import NeighborSampler
    torch.manual_seed(4)
    a, _ = tiny_graph(n=12, seed=5)
    n = a.shape[0]
    dst, src = a.nonzero(as_tuple=True)                 # CSC: in-neighbours grouped by dst
    order = torch.argsort(dst * n + src)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst.numpy(), minlength=n))])
    sampler = NeighborSampler(indptr, src[order].numpy().astype(np.int32), [-1, -1])
    sb = sampler.sample_batch(np.array([3, 7, 1]))
    deg = torch.from_numpy(indptr[sb.n_id + 1] - indptr[sb.n_id])
    blocks = [b.with_degrees(deg) for b in sb.blocks]
    x = torch.randn(n, 5)
    m = GCN(5, 6, 3, num_layers=2, dropout=0.0).eval()
    ah = a + torch.eye(n)
    dinv = ah.sum(1).rsqrt()
    norm = dinv[:, None] * ah * dinv[None, :]
    c0, c1 = m.convs
    ref = norm @ torch.relu(norm @ x @ c0.lin.weight.t() + c0.bias) @ c1.lin.weight.t() + c1.bias
    out = m(x[torch.from_numpy(sb.n_id)], blocks)
    seeds = torch.from_numpy(sb.n_id[:sb.num_seeds])      # the sampler sorts the seeds
    assert sorted(seeds.tolist()) == [1, 3, 7]
    torch.testing.assert_close(out, ref[seeds], rtol=1e-5, atol=1e-5)
