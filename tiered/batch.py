"""The batch a model trains on: input features, seed labels, and one block per layer.

A block is a bipartite graph from `num_src` source rows to `num_dst` destination
rows, with the destinations a prefix of the sources (the DGL convention, and the
one PyG's classic NeighborSampler follows), so a layer reads `x[:num_dst]` as
its own nodes' previous state. Blocks are ordered outermost (input) layer first.
Models take either `(x, blocks)` or the PyG style `(x, adjs)`, where `adjs` is
a list of `EdgeIndex(edge_index, e_id, size)` tuples exactly as PyG's
NeighborSampler yields them, so PyG example models run unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch


class EdgeIndex(NamedTuple):
    """PyG NeighborSampler's per-layer tuple: edge_index (2, E) = (src, dst) local ids."""

    edge_index: torch.Tensor
    e_id: torch.Tensor | None
    size: tuple[int, int]           # (num_src, num_dst)


@dataclass
class Block:
    """One sampled layer: edges (src local id, dst local id) into the first `num_dst` sources."""

    edge_index: torch.Tensor        # (2, E) int64
    num_src: int
    num_dst: int
    src_deg: torch.Tensor | None = None     # in-degree in the whole graph of each source node

    def with_degrees(self, deg: torch.Tensor) -> "Block":
        """This block with `src_deg` = deg[:num_src] (deg: one entry per input node)."""
        return Block(self.edge_index, self.num_src, self.num_dst, deg[:self.num_src])

    @property
    def src(self) -> torch.Tensor:
        return self.edge_index[0]

    @property
    def dst(self) -> torch.Tensor:
        return self.edge_index[1]

    def to(self, device, non_blocking: bool = False) -> "Block":
        deg = None if self.src_deg is None else self.src_deg.to(device, non_blocking=non_blocking)
        return Block(self.edge_index.to(device, non_blocking=non_blocking), self.num_src,
                     self.num_dst, deg)


@dataclass
class Batch:
    """What the executor hands to the model for one mini-batch.

    `x` holds one feature row per input node (`n_id` order, seeds first); `y`
    the labels of the `batch_size` seeds. On CPU `x` is a view of the
    executor's buffer, valid until the loader is advanced past this batch.
    """

    x: torch.Tensor
    y: torch.Tensor
    blocks: list[Block]
    n_id: torch.Tensor
    batch_size: int
    index: int = 0                          # position of this batch in its epoch
    ready: object = field(default=None, repr=False)   # CUDA event of its copy (executor's)

    @property
    def adjs(self) -> list[EdgeIndex]:
        """The blocks in PyG NeighborSampler form."""
        return [EdgeIndex(b.edge_index, None, (b.num_src, b.num_dst)) for b in self.blocks]

    @property
    def edge_indices(self) -> list[torch.Tensor]:
        """One (2, E) edge_index per layer, outermost first."""
        return [b.edge_index for b in self.blocks]

    def to(self, device, non_blocking: bool = False) -> "Batch":
        return Batch(self.x.to(device, non_blocking=non_blocking),
                     self.y.to(device, non_blocking=non_blocking),
                     [b.to(device, non_blocking) for b in self.blocks],
                     self.n_id, self.batch_size, self.index)
