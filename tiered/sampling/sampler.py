"""Uniform neighbour sampling without replacement over CSC topology held in tiers.

`indptr` lives in DRAM (8 B per node); `indices` behind any `Tier`. With a
DRAMTier the kernels read the ids in place; with any other tier (SSD, PMem)
each hop draws positions from `indptr` alone, takes the ids on hot pages from
the `NeighborCache`, and fetches the rest in one `read_rows` call per hop and
chunk of batches, so the tier sees large requests whose pages it reads once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..tiers.base import Tier
from ..tiers.dram import DRAMTier
from . import kernels as K
from .neighbor_cache import NeighborCache
from .radix import bit_length
from .sampled import SampledBatch, SampledSuperbatch


def _ptr(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    return out


class NeighborSampler:
    """Samples mini-batches: per-hop fanouts (-1: every neighbour), seeds or seed edges.

    Results depend only on (seed, batch key, seeds): not on chunking or threads.
    Safe to call from one background thread while others run (kernels release the GIL).
    """

    def __init__(self, indptr: np.ndarray, indices: Tier | np.ndarray, fanouts: Sequence[int],
                 seed: int = 0, neighbor_cache: NeighborCache | None = None,
                 chunk_batches: int = 8):
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.num_nodes = len(self.indptr) - 1
        if self.num_nodes >= 2**31 - 1:
            raise ValueError(f"the sampler takes graphs of fewer than 2^31 - 1 nodes (int32 ids); "
                             f"this one has {self.num_nodes}")
        if isinstance(indices, np.ndarray):
            indices = DRAMTier(indices, name="dram:indices", pin=False)
        if indices.num_rows != self.indptr[-1] or indices.row_shape != ():
            raise ValueError(f"{indices.name}: indices must be 1-D with indptr[-1] = "
                             f"{self.indptr[-1]} entries, found {indices.num_rows} rows of "
                             f"shape {indices.row_shape}")
        if indices.dtype != np.int32:
            raise ValueError(f"{indices.name}: indices must be int32, found {indices.dtype}")
        self.indices = indices
        self.fanouts = [int(f) for f in fanouts]
        if not self.fanouts or any(f == 0 or f < -1 for f in self.fanouts):
            raise ValueError(f"fanouts must be positive or -1 (all neighbours), got {self.fanouts}")
        self.seed = int(seed) & (2**64 - 1)
        self.chunk_batches = max(1, int(chunk_batches))
        self.id_bits = max(1, bit_length(max(self.num_nodes - 1, 1)))
        self._direct = indices.array if isinstance(indices, DRAMTier) else np.empty(0, np.int32)
        if neighbor_cache is None or self._direct.size:
            neighbor_cache = NeighborCache.empty(int(self.indptr[-1]))
        elif neighbor_cache.num_positions != self.indptr[-1]:
            raise ValueError(f"neighbour cache built for {neighbor_cache.num_positions} edges, "
                             f"graph has {self.indptr[-1]}")
        self.neighbor_cache = neighbor_cache
        self.fetched_positions = 0          # positions read through the tier (not cached)
        self.drawn_positions = 0

    # ---- public entry points ------------------------------------------------
    def sample(self, seeds: Sequence[np.ndarray], keys: Sequence[int]) -> SampledSuperbatch:
        """Sample one mini-batch per seed array; batch i draws from the stream of keys[i].

        Seeds of a batch must be distinct node ids.
        """
        return self._sample(seeds, keys, distinct=True)

    def sample_edges(self, edges: Sequence[np.ndarray], keys: Sequence[int], num_neg: int = 1,
                     neg_range: tuple[int, int] | None = None) -> SampledSuperbatch:
        """Edge-seed mode (link prediction): batch i's seeds are the endpoints of edges[i]
        ((P, 2) src, dst), plus num_neg uniform negative destinations per edge drawn from
        neg_range (default all nodes; items of a user-item graph). Negatives are not
        checked against the graph, as in PyG's default.
        """
        lo, hi = neg_range if neg_range is not None else (0, self.num_nodes)
        if not 0 <= lo < hi <= self.num_nodes:
            raise ValueError(f"neg_range {neg_range} must lie in [0, {self.num_nodes})")
        edges = [np.asarray(e, dtype=np.int64).reshape(-1, 2) for e in edges]
        pos_ptr = _ptr(np.array([len(e) for e in edges], np.int64))
        keys = np.asarray(keys, dtype=np.int64)
        flat = np.concatenate(edges) if edges else np.empty((0, 2), np.int64)
        self._check_ids(flat, "edge endpoint")
        neg = np.empty(int(pos_ptr[-1]) * num_neg, np.int64)
        K.negatives(keys.view(np.uint64), np.uint64(self.seed), pos_ptr, num_neg, lo, hi, neg)
        seeds = []
        for b, e in enumerate(edges):
            seeds.append(np.concatenate([e[:, 0], e[:, 1],
                                         neg[pos_ptr[b] * num_neg: pos_ptr[b + 1] * num_neg]]))
        sb = self._sample(seeds, keys, distinct=False)
        flat_seeds = np.concatenate(seeds) if seeds else np.empty(0, np.int64)
        seed_ptr = _ptr(np.array([len(s) for s in seeds], np.int64))
        local = np.empty(len(flat_seeds), np.int64)
        K.local_ids(sb.node_ids, sb.node_ptr[:-1], sb.hop_nodes[:, 0], flat_seeds, seed_ptr, local)
        lab_ptr = _ptr((1 + num_neg) * np.diff(pos_ptr))
        label_index = np.empty((2, int(lab_ptr[-1])), np.int32)
        for b in range(len(edges)):
            p = int(pos_ptr[b + 1] - pos_ptr[b])
            loc = local[seed_ptr[b]: seed_ptr[b + 1]]
            s, d, n = loc[:p], loc[p:2 * p], loc[2 * p:]
            label_index[0, lab_ptr[b]: lab_ptr[b + 1]] = np.concatenate([s, np.repeat(s, num_neg)])
            label_index[1, lab_ptr[b]: lab_ptr[b + 1]] = np.concatenate([d, n])
        sb.label_index, sb.label_ptr, sb.num_pos = label_index, lab_ptr, np.diff(pos_ptr)
        return sb

    def sample_batch(self, seeds: np.ndarray, key: int = 0) -> SampledBatch:
        """One mini-batch (parallel over its frontier nodes)."""
        return self.sample([seeds], [key])[0]

    # ---- internals ------------------------------------------------------------
    def _check_ids(self, ids: np.ndarray, what: str) -> None:
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_nodes):
            bad = ids.min() if ids.min() < 0 else ids.max()
            raise IndexError(f"{what} {bad} out of range [0, {self.num_nodes})")

    def _sample(self, seeds, keys, distinct: bool) -> SampledSuperbatch:
        seeds, seed_ptr, keys = self._flatten(seeds, keys)
        parts = [self._chunk(seeds, seed_ptr, keys, a, min(a + self.chunk_batches, len(keys)),
                             distinct)
                 for a in range(0, len(keys), self.chunk_batches)]
        L = len(self.fanouts)
        node_ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int32)
        hop_nodes = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, L + 1), np.int64)
        pieces = [(src, dst, eptr) for p in parts for src, dst, eptr in zip(*p[2:])]
        edges = np.empty((2, sum(len(x[0]) for x in pieces)), np.int32)
        edge_off = np.empty((len(keys), L), np.int64)
        hop_edges = np.zeros((len(keys), L), np.int64)
        o = 0
        for i, (src, dst, eptr) in enumerate(pieces):
            a = (i // L) * self.chunk_batches
            h = i % L
            edges[0, o:o + len(src)] = src
            edges[1, o:o + len(dst)] = dst
            edge_off[a:a + len(eptr) - 1, h] = o + eptr[:-1]
            hop_edges[a:a + len(eptr) - 1, h] = np.diff(eptr)
            o += len(src)
        np.cumsum(hop_edges, axis=1, out=hop_edges)
        return SampledSuperbatch(node_ids, _ptr(hop_nodes[:, -1]), hop_nodes, edges, edge_off,
                                 hop_edges, keys)

    def _flatten(self, seeds, keys):
        seeds = [np.asarray(s, dtype=np.int64).ravel() for s in seeds]
        keys = np.asarray(keys, dtype=np.int64).ravel()
        if len(keys) != len(seeds):
            raise ValueError(f"{len(seeds)} seed arrays but {len(keys)} keys")
        flat = np.concatenate(seeds) if seeds else np.empty(0, np.int64)
        self._check_ids(flat, "seed")
        return flat, _ptr(np.array([len(s) for s in seeds], np.int64)), keys

    def _chunk(self, seeds: np.ndarray, seed_ptr: np.ndarray, keys: np.ndarray,
               a: int, b: int, distinct: bool):
        """Sample batches a..b-1: (node ids, hop_nodes, [src per hop], [dst per hop],
        [per-batch edge offsets per hop])."""
        nb = b - a
        sp = seed_ptr[a:b + 1] - seed_ptr[a]
        store = np.empty(int(sp[-1]), np.int32)
        counts = np.empty(nb, np.int64)
        K.seed_hop(seeds[seed_ptr[a]:seed_ptr[b]], sp, self.id_bits, store, counts)
        if distinct and np.any(counts != np.diff(sp)):
            i = int(np.argmax(counts != np.diff(sp)))
            raise ValueError(f"batch {a + i} (key {keys[a + i]}) repeats seed node ids; "
                             f"seeds of a batch must be distinct")
        sstart = sp[:-1].copy()
        ukeys = keys[a:b].view(np.uint64)
        L = len(self.fanouts)
        hop_nodes = np.empty((nb, L + 1), np.int64)
        hop_nodes[:, 0] = counts
        lo = np.zeros(nb, np.int64)
        hop_src, hop_dst, hop_eptr = [], [], []
        nc = self.neighbor_cache.arrays()
        for h, f in enumerate(self.fanouts):
            fptr = _ptr(counts - lo)
            frontier = np.empty(int(fptr[-1]), np.int32)
            fbatch = np.empty(int(fptr[-1]), np.int32)
            K.frontier_of(store, sstart, lo, counts, fptr, frontier, fbatch)
            start = np.empty(len(frontier), np.int64)
            deg = np.empty(len(frontier), np.int64)
            K.degrees(frontier, self.indptr, start, deg)
            pos_ptr = _ptr(deg if f < 0 else np.minimum(deg, f))
            nbr = np.empty(int(pos_ptr[-1]), np.int32)
            fetch = np.empty(int(pos_ptr[-1]), np.int64)
            K.draw(frontier, fbatch, ukeys, np.uint64(self.seed), start, deg, pos_ptr,
                   self._direct, *nc, nbr, fetch)
            self.drawn_positions += len(nbr)
            if not self._direct.size:
                need = np.flatnonzero(fetch >= 0)
                if need.size:
                    nbr[need] = self.indices.read_rows(fetch[need])
                    self.fetched_positions += need.size
            eptr = pos_ptr[fptr]
            nptr = _ptr(counts + np.diff(eptr))
            nstore = np.empty(int(nptr[-1]), np.int32)
            ncounts = np.empty(nb, np.int64)
            src = np.empty(len(nbr), np.int32)
            dst = np.empty(len(nbr), np.int32)
            K.expand(store, sstart, counts, hop_nodes, h, fptr, pos_ptr, nbr, self.id_bits,
                     nstore, nptr[:-1], ncounts, src, dst)
            hop_src.append(src)
            hop_dst.append(dst)
            hop_eptr.append(eptr)
            lo, store, sstart, counts = counts, nstore, nptr[:-1], ncounts
            hop_nodes[:, h + 1] = counts
        node_ptr = _ptr(counts)
        node_ids = np.empty(int(node_ptr[-1]), np.int32)
        K.compact(store, sstart, counts, node_ptr, node_ids)
        return node_ids, hop_nodes, hop_src, hop_dst, hop_eptr
