"""Propagation weights of recommender layers, for sampled blocks and for the whole graph.

Two normalisations, both unbiased under uniform neighbour sampling (k_v of
the d_v neighbours of v sampled; exact when every neighbour is taken):

- "sym" (LightGCN, GCN without self loops): w_uv = (d_v / k_v) / sqrt(d_u d_v)
- "mean" (GraphSAGE / PinSAGE mean aggregation): w_uv = 1 / k_v

d is the node's degree in the whole user-item graph (the graph holds every
train interaction in both directions, so in- and out-degree agree).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import torch

from ..batch import Block
from .spmm import SparseMatrix, in_counts

NORMS = ("sym", "mean")


@numba.njit(nogil=True, parallel=True, cache=True)
def _weights(src, dst, deg_src, deg_dst, k, sym, out):
    for e in numba.prange(src.shape[0]):
        v = dst[e]
        if sym:
            du = max(deg_src[src[e]], 1)
            dv = max(deg_dst[v], 1)
            out[e] = (dv / k[v]) / np.sqrt(np.float64(du) * dv)
        else:
            out[e] = 1.0 / k[v]


def edge_weights(src: np.ndarray, dst: np.ndarray, deg_src: np.ndarray, deg_dst: np.ndarray,
                 num_dst: int, norm: str) -> np.ndarray:
    """float32 weight of each edge src -> dst (local ids; degrees indexed by local id)."""
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r}: expected one of {NORMS}")
    k = in_counts(dst, num_dst)
    out = np.empty(len(src), np.float32)
    _weights(np.ascontiguousarray(src, np.int64), np.ascontiguousarray(dst, np.int64),
             np.ascontiguousarray(deg_src, np.int64), np.ascontiguousarray(deg_dst, np.int64),
             k, norm == "sym", out)
    return out


def block_matrix(block: Block, norm: str) -> SparseMatrix:
    """The (num_dst x num_src) propagation matrix of a sampled block.

    Needs `block.src_deg` (whole-graph degrees, attached by the trainer) for "sym".
    """
    ei = block.edge_index.numpy() if isinstance(block.edge_index, torch.Tensor) else block.edge_index
    src, dst = ei[0], ei[1]
    if norm == "sym":
        if block.src_deg is None:
            raise ValueError("a 'sym' (LightGCN) layer needs the block's src_deg: the whole-graph "
                             "degree of every source node (Block.with_degrees)")
        deg = np.asarray(block.src_deg, dtype=np.int64)
    else:
        deg = np.zeros(block.num_src, np.int64)
    w = edge_weights(src, dst, deg, deg[:block.num_dst], block.num_dst, norm)
    return SparseMatrix.from_edges(src, dst, w, block.num_src, block.num_dst)


def block_matrices(blocks: list[Block], norm: str) -> list[SparseMatrix]:
    """The propagation matrices of a batch's blocks (outermost first).

    A sampler's blocks are nested: block l's edges are the first E_l edges of
    the outermost block's list, exactly those into its num_dst destinations, and
    a node's sampled neighbours are the same in every layer, so its weights are
    too. Then one matrix is built and the inner layers are its corners; other
    blocks get their own matrix.
    """
    outer = block_matrix(blocks[0], norm)
    out = [outer]
    base = blocks[0].edge_index
    for blk in blocks[1:]:
        ei = blk.edge_index
        nested = (isinstance(ei, torch.Tensor) and isinstance(base, torch.Tensor)
                  and ei.data_ptr() == base.data_ptr() and ei.stride() == base.stride()
                  and blk.num_dst <= outer.num_dst and blk.num_src <= outer.num_src
                  and int(outer.ptr[blk.num_dst]) == ei.shape[1])
        out.append(outer.prefix(blk.num_dst, blk.num_src) if nested else block_matrix(blk, norm))
    return out


@dataclass
class Graph:
    """The whole user-item graph in DRAM (CSC: indices[indptr[v]:indptr[v+1]] are v's
    neighbours), for full-graph inference; node ids are users 0..U-1, then items."""

    indptr: np.ndarray
    indices: np.ndarray
    num_users: int
    num_items: int
    _matrices: dict = field(default_factory=dict, repr=False)

    @property
    def num_nodes(self) -> int:
        return len(self.indptr) - 1

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def matrix(self, norm: str) -> SparseMatrix:
        """The whole-graph propagation matrix (built once per norm)."""
        if norm not in self._matrices:
            n = self.num_nodes
            dst = np.repeat(np.arange(n, dtype=np.int64), self.degree)
            src = self.indices.astype(np.int64)
            deg = self.degree.astype(np.int64)
            w = edge_weights(src, dst, deg, deg, n, norm)
            self._matrices[norm] = SparseMatrix.from_edges(src, dst, w, n, n)
        return self._matrices[norm]
