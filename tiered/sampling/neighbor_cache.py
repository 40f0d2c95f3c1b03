"""The neighbour cache: adjacency lists of the nodes most often expanded, held in DRAM.

When `indices` sit on a slow tier (SSD), every expanded node costs page reads.
The cache keeps, under a byte budget, the lists with the best expected reads
saved per byte. Membership costs 0.19 B per node of the graph: a bitmap plus a
rank directory (one int32 per 64 nodes), so a node's cached list is found in
O(1) without a node-sized map. Everything else is paid from the budget:
8 B of offset plus the list itself per cached node.

Scores (see docs/inspector.md for the measurement that picks the default):
`score_sampled` counts the positions a sample of batches actually drew from each
list, divided by the list's bytes; `score_degree_ratio` is Ginex's static
out-degree / in-degree, which needs one pass over `indices`.
"""
from __future__ import annotations

import numba
import numpy as np

from ..tiers.base import Tier

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)
_READ_CHUNK = 8 << 20        # positions per read when filling the cache or scanning indices


@numba.njit(nogil=True, cache=True, inline="always")
def popcount(x):
    x = np.uint64(x)
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    return np.int64((x * _H01) >> _S56)


@numba.njit(nogil=True, cache=True, inline="always")
def cached_offset(bits, rank, ptr, v):
    """Offset of node v's list in the cache's `indices`, or -1 when it is not cached."""
    if bits.shape[0] == 0:
        return -1
    word = bits[v >> 6]
    b = v & 63
    if (word >> b) & 1 == 0:
        return -1
    return ptr[rank[v >> 6] + popcount(word & ((np.int64(1) << b) - 1))]


@numba.njit(nogil=True, cache=True)
def _membership(nodes, num_nodes):
    """Bitmap (int64 words) and rank directory of a sorted node set."""
    words = (num_nodes + 63) >> 6
    bits = np.zeros(words, np.int64)
    for v in nodes:
        bits[v >> 6] |= np.int64(1) << (v & 63)
    rank = np.empty(words, np.int32)
    total = 0
    for w in range(words):
        rank[w] = total
        total += popcount(bits[w])
    return bits, rank


@numba.njit(nogil=True, parallel=True, cache=True)
def _list_positions(nodes, indptr, ptr, out):
    for i in numba.prange(nodes.shape[0]):
        s = indptr[nodes[i]]
        for j in range(ptr[i + 1] - ptr[i]):
            out[ptr[i] + j] = s + j


@numba.njit(nogil=True, cache=True)
def _bincount_into(ids, counts):
    for v in ids:
        counts[v] += 1


@numba.njit(nogil=True, cache=True)
def _drawn_counts(node_ids, node_ptr, hop_nodes, indptr, fanouts, counts):
    """counts[v] += positions drawn from v's list: min(fanout, degree) for each expansion."""
    for b in range(node_ptr.shape[0] - 1):
        base = node_ptr[b]
        for h in range(fanouts.shape[0]):
            lo = 0 if h == 0 else hop_nodes[b, h - 1]
            for i in range(lo, hop_nodes[b, h]):
                v = node_ids[base + i]
                d = indptr[v + 1] - indptr[v]
                f = fanouts[h]
                counts[v] += d if (f < 0 or f > d) else f


class NeighborCache:
    """Adjacency lists of a chosen node set, in DRAM, found by bitmap rank."""

    def __init__(self, num_nodes: int, nodes: np.ndarray, ptr: np.ndarray, indices: np.ndarray):
        self.num_nodes = int(num_nodes)
        self.nodes = np.ascontiguousarray(nodes, dtype=np.int64)
        self.bits, self.rank = _membership(self.nodes, self.num_nodes)
        self.ptr = np.ascontiguousarray(ptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices)

    @classmethod
    def build(cls, indptr: np.ndarray, indices: Tier, budget_bytes: int,
              score: np.ndarray) -> "NeighborCache":
        """Cache the lists of the highest-scoring nodes whose lists and offsets fit the budget.

        `score` is value per byte (higher first); lists are read from `indices`
        once, in sorted position order (sequential pages on an SSD tier).
        """
        n = len(indptr) - 1
        if len(score) != n:
            raise ValueError(f"score has {len(score)} entries, the graph has {n} nodes")
        deg = np.diff(indptr)
        cost = deg * indices.dtype.itemsize + 8
        order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
        fits = np.cumsum(cost[order]) <= budget_bytes - 8 - 12 * ((n + 63) >> 6)
        chosen = np.sort(order[: int(np.count_nonzero(fits))])
        chosen = chosen[deg[chosen] > 0]
        ptr = np.zeros(len(chosen) + 1, np.int64)
        np.cumsum(deg[chosen], out=ptr[1:])
        positions = np.empty(int(ptr[-1]), np.int64)
        _list_positions(chosen, indptr, ptr, positions)
        cached = np.empty(len(positions), indices.dtype)
        for s in range(0, len(positions), _READ_CHUNK):
            indices.read_rows(positions[s:s + _READ_CHUNK], cached[s:s + _READ_CHUNK])
        return cls(n, chosen, ptr, cached)

    @classmethod
    def empty(cls, num_nodes: int, dtype=np.int32) -> "NeighborCache":
        return cls(num_nodes, np.empty(0, np.int64), np.zeros(1, np.int64), np.empty(0, dtype))

    @property
    def num_cached(self) -> int:
        return len(self.nodes)

    @property
    def nbytes(self) -> int:
        """DRAM held: bitmap + rank directory + offsets + lists."""
        return self.bits.nbytes + self.rank.nbytes + self.ptr.nbytes + self.indices.nbytes

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bits, rank, ptr, indices): what the sampling kernels take."""
        return self.bits, self.rank, self.ptr, self.indices


def score_degree_ratio(indptr: np.ndarray, indices: Tier) -> np.ndarray:
    """Ginex's score: out-degree / in-degree (how often a node is reached per byte of its list)."""
    n = len(indptr) - 1
    out_deg = np.zeros(n, np.int64)
    buf = np.empty(_READ_CHUNK, indices.dtype)
    for s in range(0, indices.num_rows, _READ_CHUNK):
        m = min(_READ_CHUNK, indices.num_rows - s)
        indices.read_rows(np.arange(s, s + m, dtype=np.int64), buf[:m])
        _bincount_into(buf[:m], out_deg)
    return out_deg / np.maximum(np.diff(indptr), 1)


def score_sampled(batches, indptr: np.ndarray, fanouts) -> np.ndarray:
    """Positions drawn from each list by a sample of batches (a SampledSuperbatch), per list byte.

    This is what the cache saves: every drawn position of a cached list is a
    tier read avoided; dividing by the list's size makes it a knapsack ratio.
    """
    n = len(indptr) - 1
    counts = np.zeros(n, np.float32)
    _drawn_counts(batches.node_ids, batches.node_ptr, batches.hop_nodes, indptr,
                  np.asarray(fanouts, np.int64), counts)
    return counts / (np.diff(indptr) * 4 + 8).astype(np.float32)
