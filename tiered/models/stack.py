"""A stack of block convolutions: the shape every built-in node classifier shares."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..batch import Block


class BlockStack(nn.Module):
    """Applies conv l to block l (outermost first), ReLU between layers, dropout before each.

    Input: x with one row per source node of blocks[0]; output: one row per
    destination node of the last block (the seeds).
    """

    def __init__(self, convs: list[nn.Module], dropout: float = 0.5):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        if len(blocks) != len(self.convs):
            raise ValueError(f"{type(self).__name__} has {len(self.convs)} layers but the batch "
                             f"has {len(blocks)} blocks; set fanouts to {len(self.convs)} values")
        last = len(self.convs) - 1
        for i, (conv, block) in enumerate(zip(self.convs, blocks)):
            if x.shape[0] != block.num_src:
                raise ValueError(f"layer {i}: x has {x.shape[0]} rows, block expects "
                                 f"num_src={block.num_src}")
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x, block)
            if i < last:
                x = F.relu(x)
        return x


def layer_dims(in_dim: int, hidden: int, out_dim: int, num_layers: int) -> list[tuple[int, int]]:
    """(in, out) of each layer: in -> hidden -> ... -> out."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
    return list(zip(dims[:-1], dims[1:]))
