"""What the sampler produces: a superbatch of mini-batches in flat arrays, and per-batch views.

A `SampledSuperbatch` stores B mini-batches compactly (int32 node ids and
local edge ids plus int64 offsets); its node ids are also the access trace the
plan is built from. Edges are kept as the sampler writes them (by chunk of
batches, then hop, then batch), so sampling never copies them; `edge_off`
locates each batch's edges of each hop. `superbatch[i]` gives a `SampledBatch` with the API types
(int64 node ids, int64 edge_index) and the block views a model consumes.

Conventions of a batch with L hops (fanouts[0] is the hop next to the seeds):
- `n_id` = [seeds | nodes new at hop 1 | ... | new at hop L]; each segment is
  sorted by node id and the seeds are deduplicated.
- `hop_nodes[h]` = number of nodes within h hops (hop_nodes[0] = number of seeds).
- `edge_index` (2, E) = (src local, dst local): hop 1's edges first, then hop 2's...;
  `hop_edges[h]` = number of edges of hops 1..h+1. An edge of hop h goes from a
  node within h hops to a node new at hop h-1.
- Block l (l = 0 is the outermost, input layer) has num_src = hop_nodes[L-l],
  num_dst = hop_nodes[L-l-1] and the first hop_edges[L-l-1] edges: destinations
  are a prefix of the sources (DGL's convention), and a node's sampled neighbours
  are the same in every layer (PyG NeighborLoader's semantics).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..batch import Block, EdgeIndex


@dataclass
class SampledBatch:
    """One mini-batch: nodes, per-hop counts, edges, and (link prediction) labelled pairs."""

    n_id: np.ndarray                    # int64 (num_nodes,)
    hop_nodes: np.ndarray               # int64 (L+1,)
    edge_index: np.ndarray              # int64 (2, E)
    hop_edges: np.ndarray               # int64 (L,)
    key: int                            # the batch's random-stream key
    edge_label_index: np.ndarray | None = None    # int64 (2, P) local ids (edge-seed mode)
    edge_label: np.ndarray | None = None          # float32 (P,): 1 positive, 0 negative

    @property
    def num_seeds(self) -> int:
        return int(self.hop_nodes[0])

    @property
    def num_layers(self) -> int:
        return len(self.hop_edges)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(num_src, num_dst) of each block, outermost first."""
        L = self.num_layers
        return [(int(self.hop_nodes[L - l]), int(self.hop_nodes[L - l - 1])) for l in range(L)]

    def layer_edge_index(self, l: int) -> np.ndarray:
        """Edges of block l (outermost first): a prefix of `edge_index` (a view)."""
        return self.edge_index[:, : int(self.hop_edges[self.num_layers - l - 1])]

    @property
    def blocks(self) -> list[Block]:
        """DGL-style blocks as torch tensors (views of `edge_index`), outermost first."""
        import torch
        ei = torch.from_numpy(self.edge_index)
        return [Block(ei[:, : self.layer_edge_index(l).shape[1]], s, d)
                for l, (s, d) in enumerate(self.sizes)]

    def to_pyg(self):
        """PyG style: (n_id, [EdgeIndex(edge_index, None, (num_src, num_dst)) per layer])."""
        import torch
        return torch.from_numpy(self.n_id), [EdgeIndex(b.edge_index, None, (b.num_src, b.num_dst))
                                             for b in self.blocks]

    def to_dgl(self):
        """DGL blocks (dgl.create_block), outermost first, with dgl.NID set on the sources."""
        try:
            import dgl
        except ImportError as e:
            raise ImportError("SampledBatch.to_dgl needs dgl (pip install dgl); "
                              "use .blocks or .to_pyg() without it") from e
        import torch
        out = []
        for l, (s, d) in enumerate(self.sizes):
            ei = torch.from_numpy(np.ascontiguousarray(self.layer_edge_index(l)))
            blk = dgl.create_block((ei[0], ei[1]), num_src_nodes=s, num_dst_nodes=d)
            blk.srcdata[dgl.NID] = torch.from_numpy(self.n_id[:s])
            blk.dstdata[dgl.NID] = torch.from_numpy(self.n_id[:d])
            out.append(blk)
        return out


@dataclass
class SampledSuperbatch:
    """B mini-batches in flat arrays; batch b's rows are [node_ptr[b], node_ptr[b+1])."""

    node_ids: np.ndarray                # int32 (A,): every batch's n_id, concatenated
    node_ptr: np.ndarray                # int64 (B+1,)
    hop_nodes: np.ndarray               # int64 (B, L+1)
    edges: np.ndarray                   # int32 (2, E): local (src, dst)
    edge_off: np.ndarray                # int64 (B, L): where batch b's hop-(h+1) edges start
    hop_edges: np.ndarray               # int64 (B, L): batch b's edges of hops 1..h+1
    keys: np.ndarray                    # int64 (B,)
    label_index: np.ndarray | None = None   # int32 (2, P) local ids (edge-seed mode)
    label_ptr: np.ndarray | None = None     # int64 (B+1,)
    num_pos: np.ndarray | None = None       # int64 (B,): the first num_pos[b] pairs are positives

    def __len__(self) -> int:
        return len(self.node_ptr) - 1

    def edge_index(self, b: int) -> np.ndarray:
        """Batch b's edges (2, E_b) as int64, hop 1 first."""
        he = self.hop_edges[b]
        out = np.empty((2, int(he[-1]) if len(he) else 0), np.int64)
        prev = 0
        for h, end in enumerate(he):
            o = self.edge_off[b, h]
            out[:, prev:end] = self.edges[:, o:o + end - prev]
            prev = end
        return out

    def __getitem__(self, b: int) -> SampledBatch:
        if not -len(self) <= b < len(self):
            raise IndexError(f"batch {b} out of range for a superbatch of {len(self)}")
        b %= len(self)
        n0, n1 = self.node_ptr[b], self.node_ptr[b + 1]
        lab = lab_y = None
        if self.label_index is not None:
            p0, p1 = self.label_ptr[b], self.label_ptr[b + 1]
            lab = self.label_index[:, p0:p1].astype(np.int64)
            lab_y = np.zeros(p1 - p0, np.float32)
            lab_y[: self.num_pos[b]] = 1.0
        return SampledBatch(self.node_ids[n0:n1].astype(np.int64), self.hop_nodes[b].copy(),
                            self.edge_index(b), self.hop_edges[b].copy(), int(self.keys[b]),
                            lab, lab_y)

    def __iter__(self):
        return (self[b] for b in range(len(self)))

    @property
    def num_accesses(self) -> int:
        return int(self.node_ptr[-1])

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))

    def save(self, path) -> None:
        """Write every array to an .npz file (the sampled half of a replayable epoch)."""
        np.savez(path, **{k: v for k, v in vars(self).items() if v is not None})

    @classmethod
    def load(cls, path) -> "SampledSuperbatch":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in z.files})
