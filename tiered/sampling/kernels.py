"""numba kernels of the neighbour sampler (nopython, nogil; parallel over nodes or batches).

A chunk of mini-batches is sampled hop by hop. For hop h:

1. `degrees`, then `draw` (parallel over the frontier nodes of every batch):
   choose min(fanout, degree) distinct positions of each node's in-list,
   uniformly, from a random stream keyed by (seed, batch key, node); read the
   neighbour ids directly (indices in DRAM), from the neighbour cache's pages,
   or mark the positions to fetch through the tier in one page-coalesced read.
   Both kernels prefetch the lines of nodes a few entries ahead: these reads
   are cache misses the hardware cannot predict.
2. `expand` (parallel over batches): radix sort the batch's sampled neighbours,
   match them against the batch's nodes (which are sorted runs, one per hop) by
   merging, and give the unmatched ones new local ids in sorted order, so every
   hop's new nodes (each next frontier, each batch's loads) are a sorted run.
   Sorting beats a hash table here: the passes stream through memory instead
   of probing a multi-megabyte table at random.

Nothing depends on the thread count: every batch is computed from its own key.
"""
from __future__ import annotations

import numba
import numpy as np

from .neighbor_cache import cached_at
from .prefetch import prefetch
from .radix import radix_sort
from .rng import below, stream

_LOW32 = np.int64(0xFFFFFFFF)
_FLOYD_MAX = 32      # up to this fanout, Floyd's algorithm with a linear membership scan
_AHEAD = 16          # prefetch distance (frontier entries ahead) for indptr and list lines


@numba.njit(nogil=True, cache=True)
def _choose(state, d, k, out, o):
    """Write k distinct uniform positions of [0, d) into out[o:o+k] (k < d).

    Floyd's algorithm (k draws, O(k^2) checks) when k is small or the list
    long; selection sampling (Knuth's Algorithm S, O(d) draws) otherwise.
    """
    if k <= _FLOYD_MAX or k * k <= 8 * d:
        n = 0
        for j in range(d - k, d):
            t = below(state, j, j + 1)
            for q in range(o, o + n):
                if out[q] == t:
                    t = j
                    break
            out[o + n] = t
            n += 1
    else:
        n = 0
        for t in range(d):
            if below(state, t, d - t) < k - n:
                out[o + n] = t
                n += 1
                if n == k:
                    break


@numba.njit(nogil=True, parallel=True, cache=True)
def degrees(frontier, indptr, start, deg):
    """start[j], deg[j]: where frontier node j's list begins in `indices`, and its length."""
    F = frontier.shape[0]
    for j in numba.prange(F):
        if j + _AHEAD < F:
            prefetch(indptr, frontier[j + _AHEAD])
        v = frontier[j]
        start[j] = indptr[v]
        deg[j] = indptr[v + 1] - indptr[v]


@numba.njit(nogil=True, parallel=True, cache=True)
def draw(frontier, fbatch, keys, seed, start, deg, pos_ptr, direct, nc_bits, nc_rank, nc_shift,
         nc_data, nbr, fetch):
    """Sample every frontier node's neighbours (pos_ptr[j+1] - pos_ptr[j] of them).

    `direct` is the whole `indices` array when it is in DRAM (else empty): the
    ids are read in place. Otherwise positions whose page is in the neighbour
    cache are read from it and `fetch[i]` gets the position to read for the
    rest (-1 where nbr[i] is already filled).
    """
    use_direct = direct.shape[0] > 0
    F = frontier.shape[0]
    for j in numba.prange(F):
        if use_direct and j + _AHEAD < F:
            prefetch(direct, start[j + _AHEAD])
        o = pos_ptr[j]
        k = pos_ptr[j + 1] - o
        if k == 0:
            continue
        s = start[j]
        d = deg[j]
        if k == d:
            for i in range(k):
                fetch[o + i] = i
        else:
            _choose(stream(seed, keys[fbatch[j]], frontier[j]), d, k, fetch, o)
        if use_direct:
            for i in range(o, o + k):
                nbr[i] = direct[s + fetch[i]]
                fetch[i] = -1
        else:
            for i in range(o, o + k):
                p = s + fetch[i]
                c = cached_at(nc_bits, nc_rank, nc_shift, p)
                if c >= 0:
                    nbr[i] = nc_data[c]
                    fetch[i] = -1
                else:
                    fetch[i] = p


@numba.njit(nogil=True, parallel=True, cache=True)
def seed_hop(seeds, seed_ptr, id_bits, store, counts):
    """Hop 0: each batch's seeds, deduplicated and sorted, into store[seed_ptr[b]:...]."""
    for b in numba.prange(seed_ptr.shape[0] - 1):
        lo = seed_ptr[b]
        n = seed_ptr[b + 1] - lo
        packed = np.empty(n, np.int64)
        for i in range(n):
            packed[i] = np.int64(seeds[lo + i]) << 32
        srt = radix_sort(packed, np.empty(n, np.int64), 32, 32 + id_bits)
        m = 0
        for i in range(n):
            v = srt[i] >> 32
            if m == 0 or store[lo + m - 1] != v:
                store[lo + m] = v
                m += 1
        counts[b] = m


@numba.njit(nogil=True, parallel=True, cache=True)
def frontier_of(store, sstart, lo, hi, fptr, frontier, fbatch):
    """Flatten the frontier (local ids lo[b]..hi[b] of each batch) into one array."""
    for b in numba.prange(lo.shape[0]):
        o = fptr[b]
        for i in range(hi[b] - lo[b]):
            frontier[o + i] = store[sstart[b] + lo[b] + i]
            fbatch[o + i] = b


@numba.njit(nogil=True, parallel=True, cache=True)
def expand(store, sstart, counts, hop_nodes, h, fptr, pos_ptr, nbr, id_bits, nstore, nstart,
           ncounts, src, dst):
    """Hop h+1 of every batch: deduplicate the sampled neighbours, append new nodes, write edges.

    Batch b's nodes are store[sstart[b]:+counts[b]], h+1 sorted runs ending at
    hop_nodes[b, 0..h]; its frontier (local ids from hop_nodes[b, h-1]) is
    entries fptr[b]..fptr[b+1] of the flattened frontier; frontier entry j's
    neighbours are nbr[pos_ptr[j]:pos_ptr[j+1]], and edge e is (src[e], dst[e]).
    """
    for b in numba.prange(counts.shape[0]):
        n0 = counts[b]
        sb = sstart[b]
        e0 = pos_ptr[fptr[b]]
        s = pos_ptr[fptr[b + 1]] - e0
        lo = hop_nodes[b, h - 1] if h > 0 else 0
        packed = np.empty(s, np.int64)
        for j in range(fptr[b], fptr[b + 1]):
            dl = np.int32(lo + (j - fptr[b]))
            for e in range(pos_ptr[j], pos_ptr[j + 1]):
                packed[e - e0] = (np.int64(nbr[e]) << 32) | (e - e0)
                dst[e] = dl
        srt = radix_sort(packed, np.empty(s, np.int64), 32, 32 + id_bits)
        found = np.full(s, -1, np.int32)
        for r in range(h + 1):                       # merge against each sorted run
            p = hop_nodes[b, r - 1] if r > 0 else 0
            end = hop_nodes[b, r]
            j = 0
            while j < s and p < end:
                u = srt[j] >> 32
                v = store[sb + p]
                if u < v:
                    j += 1
                elif u > v:
                    p += 1
                else:
                    found[j] = p
                    j += 1
        base = nstart[b]
        for i in range(n0):
            nstore[base + i] = store[sb + i]
        m = 0
        prev = -1
        for j in range(s):
            u = srt[j] >> 32
            loc = found[j]
            if loc < 0:
                if u != prev:
                    nstore[base + n0 + m] = u
                    m += 1
                    prev = u
                loc = n0 + m - 1
            src[e0 + (srt[j] & _LOW32)] = loc
        ncounts[b] = n0 + m


@numba.njit(nogil=True, parallel=True, cache=True)
def compact(store, sstart, counts, node_ptr, node_ids):
    """Copy each batch's nodes out of the (slack-padded) store into flat node_ids."""
    for b in numba.prange(counts.shape[0]):
        o = node_ptr[b]
        for i in range(counts[b]):
            node_ids[o + i] = store[sstart[b] + i]


@numba.njit(nogil=True, parallel=True, cache=True)
def negatives(keys, seed, ptr, num_neg, lo, hi, out):
    """num_neg uniform destinations in [lo, hi) per positive edge, from each batch's key."""
    for b in numba.prange(keys.shape[0]):
        st = stream(seed, keys[b], 0x6E6567)                # "neg"
        for i in range((ptr[b + 1] - ptr[b]) * num_neg):
            out[ptr[b] * num_neg + i] = lo + below(st, i, hi - lo)


@numba.njit(nogil=True, parallel=True, cache=True)
def local_ids(store, sstart, counts, ids, ptr, out):
    """out[i] = position of ids[i] in its batch's sorted seed list (binary search)."""
    for b in numba.prange(counts.shape[0]):
        seg = store[sstart[b]: sstart[b] + counts[b]]
        for i in range(ptr[b], ptr[b + 1]):
            out[i] = np.searchsorted(seg, ids[i])
