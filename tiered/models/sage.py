"""GraphSAGE with mean aggregation (Hamilton et al. 2017), as PyG's SAGEConv computes it."""
from __future__ import annotations

import torch
from torch import nn

from ..batch import Block
from .ops import scatter_mean, take
from .stack import BlockStack, layer_dims


class SAGEConv(nn.Module):
    """out_i = W_l mean_{j->i} x_j + b + W_r x_i.

    When the layer narrows (in > out) features are projected before the mean,
    which is the same linear map applied to fewer, shorter rows.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin_l = nn.Linear(in_dim, out_dim, bias=True)
        self.lin_r = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        src, dst = block.edge_index
        x_dst = x[:block.num_dst]
        if self.lin_l.in_features > self.lin_l.out_features:
            h = x @ self.lin_l.weight.t()
            agg = scatter_mean(take(h, src), dst, block.num_dst) + self.lin_l.bias
        else:
            agg = self.lin_l(scatter_mean(take(x, src), dst, block.num_dst))
        return agg + self.lin_r(x_dst)


class GraphSAGE(BlockStack):
    """GraphSAGE-mean node classifier over sampled blocks."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 2,
                 dropout: float = 0.5):
        super().__init__([SAGEConv(i, o) for i, o in layer_dims(in_dim, hidden, out_dim, num_layers)],
                         dropout)
