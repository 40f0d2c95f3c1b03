"""Link-prediction encoders over sampled blocks: LightGCN and a GraphSAGE/PinSAGE-style stack.

The interface is the node classifiers' (tiered/batch.py): `forward(x, blocks)`
with x one row per input node (seeds first) and blocks outermost first, each
carrying `src_deg`; it returns one embedding per seed, and scores are dot
products of those. `full_graph(x, graph)` computes every node's embedding at
once over the whole graph (evaluation); a custom model without it is evaluated
by sampled inference instead (tiered/recsys/trainer.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..batch import Block
from .graph import Graph, block_matrices
from .spmm import SparseMatrix, spmm

MAX_LAYERS = 6


def _check_depth(model: nn.Module, blocks: list[Block], layers: int) -> None:
    if len(blocks) != layers:
        raise ValueError(f"{type(model).__name__} has {layers} layers but the batch has "
                         f"{len(blocks)} blocks; sample {layers} hops (fanouts)")


class LightGCN(nn.Module):
    """He et al. (SIGIR 2020): e(l+1) = D^-1/2 A D^-1/2 e(l), output the mean of e(0..L).

    No weights: the only parameters are the learnable embeddings (the input x).
    """

    def __init__(self, num_layers: int = 3):
        super().__init__()
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ValueError(f"LightGCN: num_layers must be 1..{MAX_LAYERS}, got {num_layers}")
        self.num_layers = int(num_layers)

    def forward(self, x: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        _check_depth(self, blocks, self.num_layers)
        seeds = blocks[-1].num_dst
        total = x[:seeds]
        h = x
        for a in block_matrices(blocks, "sym"):
            h = spmm(a, h)
            total = total + h[:seeds]
        return total / (self.num_layers + 1)

    @torch.no_grad()
    def full_graph(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        a = graph.matrix("sym")
        total, h = x.clone(), x
        for _ in range(self.num_layers):
            h = spmm(a, h)
            total += h
        return total / (self.num_layers + 1)


class SAGELayer(nn.Module):
    """out_v = W_n mean_{u in N(v)} h_u + W_s h_v + b (GraphSAGE-mean, PinSAGE's aggregator
    without importance pooling)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.neigh = nn.Linear(in_dim, out_dim, bias=True)
        self.self_ = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, h: torch.Tensor, a: SparseMatrix) -> torch.Tensor:
        return self.neigh(spmm(a, h)) + self.self_(h[:a.num_dst])


class SAGERecommender(nn.Module):
    """A GraphSAGE/PinSAGE-style encoder over learnable embeddings (and input features,
    when given, concatenated to them): L SAGE-mean layers, ReLU between, dim-wide output."""

    def __init__(self, in_dim: int, dim: int, num_layers: int = 2):
        super().__init__()
        if not 1 <= num_layers <= MAX_LAYERS:
            raise ValueError(f"SAGERecommender: num_layers must be 1..{MAX_LAYERS}, got {num_layers}")
        self.layers = nn.ModuleList(SAGELayer(in_dim if i == 0 else dim, dim)
                                    for i in range(num_layers))

    def _encode(self, h: torch.Tensor, matrices) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, (layer, a) in enumerate(zip(self.layers, matrices)):
            h = layer(h, a)
            if i < last:
                h = F.relu(h)
        return h

    def forward(self, x: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        _check_depth(self, blocks, len(self.layers))
        return self._encode(x, block_matrices(blocks, "mean"))

    @torch.no_grad()
    def full_graph(self, x: torch.Tensor, graph: Graph) -> torch.Tensor:
        return self._encode(x, [graph.matrix("mean")] * len(self.layers))


BUILTIN = {"lightgcn": LightGCN, "sage": SAGERecommender}


def build_link_model(spec: str, in_dim: int, dim: int, num_layers: int) -> nn.Module:
    """"lightgcn", "sage", or "package.module:Class" built as Class(in_dim, dim, num_layers)."""
    if spec == "lightgcn":
        if in_dim != dim:
            raise ValueError(f"LightGCN propagates the embeddings unchanged: input features "
                             f"(in_dim {in_dim} != dim {dim}) need the 'sage' encoder")
        return LightGCN(num_layers)
    if spec == "sage":
        return SAGERecommender(in_dim, dim, num_layers)
    from ..models import resolve_model_class
    cls = resolve_model_class(spec)
    try:
        return cls(in_dim, dim, num_layers)
    except TypeError as e:
        raise TypeError(f"link model {spec!r}: tiered constructs it as {cls.__name__}(in_dim, dim, "
                        f"num_layers); that failed: {e}") from e
