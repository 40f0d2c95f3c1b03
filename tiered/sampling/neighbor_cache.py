"""The neighbour cache: the most read pages of `indices`, held in DRAM.

When `indices` sit on the SSD tier, what a hop costs is the number of distinct
4 KiB pages its positions touch (the tier reads each page once per request).
Small adjacency lists share pages, so caching whole lists (Ginex's way) saves a
page only when every list on it is cached; on a power-law graph the last hop of
a chunk of batches touches nearly every page, and a list cache of 10% of
`indices` removed only 4.4% of the page reads (docs/inspector.md). This cache
therefore holds pages: page q is either wholly in DRAM or not, and a position p
is served from DRAM iff its page is. Membership is a bitmap plus a rank
directory over pages (12 B per 64 pages: 0.0002 B per int32 edge), so finding
a position costs O(1) and no node-sized array exists.

Scores (higher is cached first; the benchmark compares them):
`page_reads` counts the page reads a few sampled batches actually cause;
`page_degree_score` estimates them from degrees (out-degree of the lists on a
page), needing one pass over `indices` instead of a sampling run; it saved as
many reads or slightly more in the benchmark. The cache cuts bytes read; whether
it cuts time depends on the device: where a hop reads nearly every page anyway,
the uncached reads it leaves are fragmented and can take longer (measured there).
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from ..tiers.base import Tier, TierHints

PAGE_BYTES = 4096
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
def cached_at(bits, rank, shift, p):
    """Index into the cache's data of position p of `indices`, or -1 when its page is not cached."""
    if bits.shape[0] == 0:
        return -1
    q = p >> shift
    word = bits[q >> 6]
    b = q & 63
    if (word >> b) & 1 == 0:
        return -1
    r = rank[q >> 6] + popcount(word & ((np.int64(1) << b) - 1))
    return (r << shift) | (p & ((np.int64(1) << shift) - 1))


@numba.njit(nogil=True, cache=True)
def _membership(pages, num_pages):
    """Bitmap (int64 words) and rank directory of a sorted page set."""
    words = (num_pages + 63) >> 6
    bits = np.zeros(words, np.int64)
    for q in pages:
        bits[q >> 6] |= np.int64(1) << (q & 63)
    rank = np.empty(words, np.int32)
    total = 0
    for w in range(words):
        rank[w] = total
        total += popcount(bits[w])
    return bits, rank


@numba.njit(nogil=True, cache=True)
def _bincount_into(ids, counts):
    for v in ids:
        counts[v] += 1


@numba.njit(nogil=True, cache=True)
def _degree_pages(indptr, out_deg, shift, fanout, score):
    """score[q] += expected expansions of each list on page q that touch the page."""
    for v in range(indptr.shape[0] - 1):
        s, e = indptr[v], indptr[v + 1]
        d = e - s
        if d == 0 or out_deg[v] == 0:
            continue
        for q in range(s >> shift, ((e - 1) >> shift) + 1):
            lo = max(s, q << shift)
            hi = min(e, (q + 1) << shift)
            score[q] += out_deg[v] * min(1.0, fanout * (hi - lo) / d)


class NeighborCache:
    """Pages of `indices` (each PAGE_BYTES long) in DRAM, found by bitmap rank."""

    def __init__(self, num_positions: int, pages: np.ndarray, data: np.ndarray):
        self.num_positions = int(num_positions)
        self.page_entries = PAGE_BYTES // data.dtype.itemsize
        self.shift = self.page_entries.bit_length() - 1
        self.num_pages = -(-self.num_positions // self.page_entries)
        self.pages = np.ascontiguousarray(pages, dtype=np.int64)
        self.bits, self.rank = _membership(self.pages, self.num_pages) if len(self.pages) else \
            (np.empty(0, np.int64), np.empty(0, np.int32))
        self.data = np.ascontiguousarray(data)

    @classmethod
    def build(cls, indices: Tier, budget_bytes: int, score: np.ndarray) -> "NeighborCache":
        """Cache the highest-scoring pages of `indices` that fit the budget (membership included).

        The pages are read once, in order (sequential on an SSD tier).
        """
        page_entries = PAGE_BYTES // indices.dtype.itemsize
        num_pages = -(-indices.num_rows // page_entries)
        if len(score) != num_pages:
            raise ValueError(f"score has {len(score)} entries, {indices.name} has {num_pages} "
                             f"pages of {PAGE_BYTES} B")
        membership = 12 * ((num_pages + 63) >> 6)
        fit = max(0, (budget_bytes - membership) // PAGE_BYTES)
        order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
        pages = np.sort(order[: min(fit, num_pages)])
        data = np.zeros(len(pages) * page_entries, indices.dtype)
        positions = (pages[:, None] * page_entries + np.arange(page_entries)).ravel()
        valid = np.flatnonzero(positions < indices.num_rows)
        for s in range(0, len(valid), _READ_CHUNK):
            sel = valid[s:s + _READ_CHUNK]
            data[sel] = indices.read_rows(positions[sel])
        return cls(indices.num_rows, pages, data)

    @classmethod
    def empty(cls, num_positions: int, dtype=np.int32) -> "NeighborCache":
        return cls(num_positions, np.empty(0, np.int64), np.empty(0, dtype))

    @property
    def num_cached(self) -> int:
        return len(self.pages)

    @property
    def nbytes(self) -> int:
        """DRAM held: bitmap + rank directory + the cached pages."""
        return self.bits.nbytes + self.rank.nbytes + self.data.nbytes

    def arrays(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """(bits, rank, shift, data): what the sampling kernels take."""
        return self.bits, self.rank, self.shift, self.data


class _PageCounter(Tier):
    """A tier that reads through another and counts, per page, the calls that read it."""

    def __init__(self, inner: Tier):
        super().__init__(f"count:{inner.name}", inner.num_rows, inner.row_shape, inner.dtype)
        self.inner = inner
        self.shift = (PAGE_BYTES // inner.dtype.itemsize).bit_length() - 1
        self.counts = np.zeros(-(-inner.num_rows >> self.shift) + 1, np.float64)

    @property
    def hints(self) -> TierHints:
        return self.inner.hints

    def _read(self, ids: np.ndarray, out: np.ndarray) -> int:
        self.counts[np.unique(ids >> self.shift)] += 1
        self.inner.read_rows(ids, out)
        return out.nbytes

    def _write(self, ids: np.ndarray, rows: np.ndarray) -> int:
        raise PermissionError(f"{self.name} is read-only")


def page_reads(indptr: np.ndarray, indices: Tier, fanouts: Sequence[int],
               seeds: Sequence[np.ndarray], keys: Sequence[int], seed: int = 0,
               chunk_batches: int = 8) -> np.ndarray:
    """Per page of `indices`: how many reads sampling these batches (without a cache) makes.

    This is what caching the page saves, so it is the score `build` wants.
    """
    from .sampler import NeighborSampler
    counter = _PageCounter(indices)
    NeighborSampler(indptr, counter, fanouts, seed=seed, chunk_batches=chunk_batches).sample(
        seeds, keys)
    return counter.counts[: -(-indices.num_rows >> counter.shift)]


def page_degree_score(indptr: np.ndarray, indices: Tier, fanout: int) -> np.ndarray:
    """Static estimate of page reads: for each list on a page, its node's out-degree (how
    often it is reached) times the chance an expansion of `fanout` draws touches the page."""
    n = len(indptr) - 1
    out_deg = np.zeros(n, np.int64)
    buf = np.empty(_READ_CHUNK, indices.dtype)
    for s in range(0, indices.num_rows, _READ_CHUNK):
        m = min(_READ_CHUNK, indices.num_rows - s)
        indices.read_rows(np.arange(s, s + m, dtype=np.int64), buf[:m])
        _bincount_into(buf[:m], out_deg)
    shift = (PAGE_BYTES // indices.dtype.itemsize).bit_length() - 1
    score = np.zeros(-(-indices.num_rows >> shift), np.float64)
    _degree_pages(np.asarray(indptr, np.int64), out_deg, shift, float(fanout), score)
    return score
