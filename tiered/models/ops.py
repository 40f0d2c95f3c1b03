"""Message-passing primitives over a block's edge list, in plain torch.

These replace torch_scatter/torch_sparse: sums with `index_add`, maxima with
`scatter_reduce`, row picks with `index_select`. Rows are picked with
index_select rather than `t[idx]`: the backward of advanced indexing on CPU adds
with parallel atomics (order varies run to run), index_select's backward is the
serial index_add. The out-of-core vs in-DRAM equality test relies on it.
"""
from __future__ import annotations

import torch


def take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """t[index] along dim 0, with a deterministic backward."""
    return t.index_select(0, index)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """out[i] = sum of src[e] over edges e with index[e] == i (rows of src are edges)."""
    out = torch.zeros((num,) + tuple(src.shape[1:]), dtype=src.dtype, device=src.device)
    return out.index_add(0, index, src)


def degree(index: torch.Tensor, num: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """How many edges point at each of `num` nodes."""
    return torch.bincount(index, minlength=num).to(dtype)


def scatter_mean(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """Mean of src rows per index; 0 for nodes without edges."""
    total = scatter_sum(src, index, num)
    deg = degree(index, num, src.dtype).clamp_(min=1)
    return total / deg.view((-1,) + (1,) * (src.dim() - 1))


def segment_softmax(score: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """Softmax of edge scores over the edges sharing a destination (score: (E, H))."""
    shape = (num,) + tuple(score.shape[1:])
    idx = index.view((-1,) + (1,) * (score.dim() - 1)).expand_as(score)
    peak = torch.full(shape, float("-inf"), dtype=score.dtype, device=score.device)
    peak = peak.scatter_reduce(0, idx, score.detach(), reduce="amax", include_self=True)
    ex = (score - take(peak, index)).exp()
    return ex / take(scatter_sum(ex, index, num), index)
