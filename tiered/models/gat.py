"""GAT (Velickovic et al. 2018) over sampled blocks, as PyG's GATConv computes it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..batch import Block
from .ops import scatter_sum, segment_softmax, take
from .stack import BlockStack, layer_dims


class GATConv(nn.Module):
    """Multi-head attention over in-edges plus a self-loop per destination.

    alpha_ij = softmax_j LeakyReLU(a_src . W x_j + a_dst . W x_i); heads are
    concatenated (`concat=True`, hidden layers) or averaged (output layer).
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int = 4, concat: bool = True,
                 negative_slope: float = 0.2, attn_dropout: float = 0.0):
        super().__init__()
        if concat and out_dim % heads:
            raise ValueError(f"GAT: width {out_dim} is not divisible by {heads} heads")
        self.heads, self.concat = heads, concat
        self.channels = out_dim // heads if concat else out_dim
        self.lin = nn.Linear(in_dim, heads * self.channels, bias=False)
        nn.init.xavier_uniform_(self.lin.weight)
        self.att_src = nn.Parameter(torch.empty(1, heads, self.channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, self.channels))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.negative_slope, self.attn_dropout = negative_slope, attn_dropout
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)

    def forward(self, x: torch.Tensor, block: Block) -> torch.Tensor:
        nd = block.num_dst
        loops = torch.arange(nd, device=x.device)
        src = torch.cat([block.edge_index[0], loops])
        dst = torch.cat([block.edge_index[1], loops])
        h = self.lin(x).view(-1, self.heads, self.channels)
        a_src = (h * self.att_src).sum(-1)
        a_dst = (h[:nd] * self.att_dst).sum(-1)
        score = F.leaky_relu(take(a_src, src) + take(a_dst, dst), self.negative_slope)
        alpha = segment_softmax(score, dst, nd)
        alpha = F.dropout(alpha, self.attn_dropout, self.training)
        out = scatter_sum(take(h, src) * alpha.unsqueeze(-1), dst, nd)
        out = out.reshape(nd, -1) if self.concat else out.mean(1)
        return out + self.bias


class GAT(BlockStack):
    """GAT node classifier: concatenated heads in hidden layers, averaged in the last."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 2,
                 dropout: float = 0.5, heads: int = 4):
        dims = layer_dims(in_dim, hidden, out_dim, num_layers)
        convs = [GATConv(i, o, heads=heads, concat=k < len(dims) - 1, attn_dropout=dropout)
                 for k, (i, o) in enumerate(dims)]
        super().__init__(convs, dropout)
