"""GCN (Kipf & Welling 2017) over sampled blocks.

out_i = b + W x_i / d_i + (d_i / k_i) sum_{sampled j -> i} W x_j / sqrt(d_i d_j), with
d = in-degree + 1 (the self-loop) in the whole graph when the block carries
`src_deg` (the executor attaches it) and k_i the neighbours sampled for i:
with every neighbour taken this is exactly D^-1/2 (A + I) D^-1/2 X W; with
fewer, the sum is scaled up to estimate it. Without `src_deg` the degrees are
counted in the block (destination in-degree, source out-degree: DGL's norm="both").
"""
from __future__ import annotations

import torch
from torch import nn

from ..batch import Block
from .ops import degree, scatter_sum, take
from .stack import BlockStack, layer_dims


class GCNConv(nn.Module):
    """out_i = b + sum_{j in N(i) + i} W x_j / sqrt(d_i d_j)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.xavier_uniform_(self.lin.weight)        # Glorot, as in the paper
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        src, dst = block.edge_index
        nd = block.num_dst
        k = degree(dst, nd, x.dtype)
        if block.src_deg is not None:
            d = block.src_deg.to(x.dtype) + 1
            d_dst, d_src = d[:nd], d
            scale = torch.where(k > 0, (d_dst - 1) / k.clamp(min=1), torch.zeros_like(k))
        else:
            d_dst = k + 1
            d_src = degree(src, block.num_src, x.dtype)
            d_src[:nd] += 1
            scale = torch.ones_like(k)
        h = self.lin(x)
        w = (scale[dst] * (d_dst[dst] * d_src[src]).rsqrt()).unsqueeze(1)
        out = scatter_sum(take(h, src) * w, dst, nd)
        out = out + h[:nd] * (d_dst * d_src[:nd]).rsqrt().unsqueeze(1)
        return out + self.bias


class GCN(BlockStack):
    """GCN node classifier over sampled blocks."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 2,
                 dropout: float = 0.5):
        super().__init__([GCNConv(i, o) for i, o in layer_dims(in_dim, hidden, out_dim, num_layers)],
                         dropout)
