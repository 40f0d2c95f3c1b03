"""Out-of-core CSC construction: partition edges by destination on disk, sort each part in RAM.

Edges arrive in blocks. Each block is split by destination range into bucket
files (one numba pass; reverse edges and self-loop removal happen here).
Then buckets are loaded in destination order, as many at a time as the
memory budget allows, counting-sorted by destination, each in-list sorted by
source (and deduplicated), and streamed out as `Run`s. A bucket too large for
the budget is partitioned again, by narrower destination ranges, or by source
range when it holds a single destination, so any skew fits any budget.

When the node count is not known up front (text edge lists) or ids are to be
compacted, blocks are first appended to a staging file; `finish()` then knows
the ids and replays the staging file through the partitioner.
"""
from __future__ import annotations

import os
import resource
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numba
import numpy as np
from tqdm import tqdm

from ..format import ArrayWriter
from .options import ConvertError
from .output import ScratchArray
from .overlap import prefetch

_SMALL_SEGMENT = 24            # in-lists up to this long are insertion-sorted
_NODE_BYTES = 32               # sort-phase bytes per destination in a batch's range
_BUCKETS_PER_BATCH = 8         # finer buckets than batches: batches pack around skew
_BASELINE_FLOOR = 0.25         # share of the limit kept for work even if RSS is already high


def index_dtype(num_nodes: int) -> np.dtype:
    """dtype of `indices` (and of bucket records): int32 when ids fit, else int64."""
    return np.dtype(np.int32) if num_nodes < 2**31 else np.dtype(np.int64)


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def working_budget(memory_limit: int) -> int:
    """Bytes of working memory left under the limit once this process's footprint is paid."""
    return max(int(memory_limit * _BASELINE_FLOOR), memory_limit - current_rss())


def _max_open_files() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(2, min(1024, (soft if soft > 0 else 1024) // 4))


# ---------------------------------------------------------------------------- numba kernels

@numba.njit(nogil=True, cache=True)
def _partition_edges(src, dst, wbits, has_w, reverse, drop_loops, n_nodes, width, nb, out,
                     starts):
    """Scatter edges (and their reverses) into `out` grouped by destination bucket.

    Returns the number of records, or -(k + 1) if edge k has an id outside [0, n_nodes).
    """
    counts = np.zeros(nb + 1, np.int64)
    for e in range(src.shape[0]):
        s = src[e]
        d = dst[e]
        if s < 0 or d < 0 or s >= n_nodes or d >= n_nodes:
            return -(e + 1)
        if drop_loops and s == d:
            continue
        counts[d // width + 1] += 1
        if reverse:
            counts[s // width + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    starts[:] = counts
    pos = counts[:nb].copy()
    for e in range(src.shape[0]):
        s = src[e]
        d = dst[e]
        if drop_loops and s == d:
            continue
        b = d // width
        p = pos[b]
        out[p, 0] = d
        out[p, 1] = s
        if has_w:
            out[p, 2] = wbits[e]
        pos[b] = p + 1
        if reverse:
            b = s // width
            p = pos[b]
            out[p, 0] = s
            out[p, 1] = d
            if has_w:
                out[p, 2] = wbits[e]
            pos[b] = p + 1
    return counts[nb]


@numba.njit(nogil=True, cache=True)
def _partition_records(rec, col, lo, width, nb, out, starts):
    """Scatter records into `out` grouped by bucket (rec[:, col] - lo) // width."""
    counts = np.zeros(nb + 1, np.int64)
    for e in range(rec.shape[0]):
        counts[(rec[e, col] - lo) // width + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    starts[:] = counts
    pos = counts[:nb].copy()
    for e in range(rec.shape[0]):
        b = (rec[e, col] - lo) // width
        out[pos[b], :] = rec[e, :]
        pos[b] += 1


@numba.njit(nogil=True, cache=True)
def _insertion_sort(a, w, lo, hi, has_w):
    for i in range(lo + 1, hi):
        x = a[i]
        wx = w[i] if has_w else 0.0
        j = i - 1
        while j >= lo and a[j] > x:
            a[j + 1] = a[j]
            if has_w:
                w[j + 1] = w[j]
            j -= 1
        a[j + 1] = x
        if has_w:
            w[j + 1] = wx


@numba.njit(nogil=True, cache=True, parallel=True)
def _sort_batch(rec, w_in, has_w, lo, n_range, dedup):
    """CSC of one batch: counting sort by destination, then each in-list sorted by source.

    Returns (counts per destination, sources, weights); duplicates are merged
    (weights summed) when `dedup`.
    """
    m = rec.shape[0]
    ptr = np.zeros(n_range + 1, np.int64)
    for e in range(m):
        ptr[rec[e, 0] - lo + 1] += 1
    for v in range(n_range):
        ptr[v + 1] += ptr[v]
    pos = ptr[:n_range].copy()
    out = np.empty(m, rec.dtype)
    w = np.empty(m if has_w else 0, np.float32)
    for e in range(m):
        k = rec[e, 0] - lo
        p = pos[k]
        out[p] = rec[e, 1]
        if has_w:
            w[p] = w_in[e]
        pos[k] = p + 1
    counts = np.empty(n_range, np.int64)
    for v in numba.prange(n_range):
        a = ptr[v]
        b = ptr[v + 1]
        if b - a <= _SMALL_SEGMENT:
            _insertion_sort(out, w, a, b, has_w)
        elif has_w:
            order = np.argsort(out[a:b], kind="mergesort")
            out[a:b] = out[a:b][order]
            w[a:b] = w[a:b][order]
        else:
            out[a:b] = np.sort(out[a:b])
        if dedup and b > a:
            k = a
            for i in range(a + 1, b):
                if out[i] != out[k]:
                    k += 1
                    out[k] = out[i]
                    if has_w:
                        w[k] = w[i]
                elif has_w:
                    w[k] += w[i]
            counts[v] = k + 1 - a
        else:
            counts[v] = b - a
    if not dedup:
        return counts, out, w
    write = 0
    for v in range(n_range):
        a = ptr[v]
        for i in range(counts[v]):
            out[write + i] = out[a + i]
            if has_w:
                w[write + i] = w[a + i]
        write += counts[v]
    return counts, out[:write], w[:write] if has_w else w


# ---------------------------------------------------------------------------- buckets on disk

@dataclass
class _Bucket:
    path: Path
    records: int
    lo: int          # key range [lo, hi) of the column it was split on
    hi: int


class _BucketSet:
    """Bucket files splitting one key column's range [lo, hi) into equal-width parts."""

    def __init__(self, directory: Path, lo: int, hi: int, nb: int, cols: int, dtype: np.dtype):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.lo, self.hi = lo, hi
        self.width = max(1, -(-(hi - lo) // max(1, nb)))
        self.nb = -(-(hi - lo) // self.width)
        self.cols, self.dtype = cols, dtype
        self.counts = np.zeros(self.nb, np.int64)
        self.files = [open(directory / f"{b:05d}.bin", "wb", buffering=0)
                      for b in range(self.nb)]

    def write_grouped(self, grouped: np.ndarray, starts: np.ndarray) -> None:
        """Append records already grouped by bucket (starts: nb + 1 offsets)."""
        for b in np.flatnonzero(np.diff(starts[: self.nb + 1])):
            part = grouped[starts[b]:starts[b + 1]]
            self.files[b].write(memoryview(part).cast("B"))
            self.counts[b] += len(part)

    def close(self) -> list[_Bucket]:
        for f in self.files:
            f.close()
        out = []
        for b in range(self.nb):
            path = self.directory / f"{b:05d}.bin"
            if self.counts[b]:
                lo = self.lo + b * self.width
                out.append(_Bucket(path, int(self.counts[b]), lo, min(self.hi, lo + self.width)))
            else:
                path.unlink()
        return out


def _read_records(bucket: _Bucket, cols: int, dtype: np.dtype, out: np.ndarray | None = None
                  ) -> np.ndarray:
    rec = np.empty((bucket.records, cols), dtype) if out is None else out
    with open(bucket.path, "rb", buffering=0) as f:
        view = memoryview(rec).cast("B")
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])
            if not n:
                raise ConvertError(f"{bucket.path}: scratch bucket file is short "
                                   f"({got} of {len(view)} bytes); was the scratch disk full?")
            got += n
    return rec


def _iter_records(bucket: _Bucket, cols: int, dtype: np.dtype, block: int) -> Iterator[np.ndarray]:
    row_bytes = cols * dtype.itemsize
    with open(bucket.path, "rb") as f:
        left = bucket.records
        while left:
            take = min(left, block)
            rec = np.frombuffer(f.read(take * row_bytes), dtype).reshape(take, cols)
            if len(rec) != take:
                raise ConvertError(f"{bucket.path}: scratch bucket file is short")
            left -= take
            yield rec


# ---------------------------------------------------------------------------- runs

@dataclass
class Run:
    """A piece of the CSC: destinations lo..hi-1, their in-degree and sorted sources.

    `continues` marks a run whose first destination is the previous run's last
    (a destination whose in-list alone exceeded the memory budget).
    """

    lo: int
    hi: int
    counts: np.ndarray
    sources: np.ndarray
    weights: np.ndarray | None
    continues: bool = False


@dataclass
class CSCStats:
    """What write_csc wrote: edge count and in-degree statistics."""

    num_nodes: int
    num_edges: int
    degree_min: int
    degree_max: int
    degree_mean: float


class EdgeCollector:
    """Collects edge blocks and yields them as sorted CSC runs, within a memory budget.

    Use: `add()` blocks of (src, dst[, weight]) int64 ids, `finish()`, then
    iterate `runs()` (or call `write_csc`). `close()` removes the scratch files.
    """

    def __init__(self, scratch: Path, *, memory_limit: int, num_nodes: int | None = None,
                 reverse: bool = False, drop_self_loops: bool = False, dedup: bool = False,
                 compact_ids: bool = False, weighted: bool = False,
                 expected_edges: int | None = None, progress: bool = True, desc: str = "edges"):
        self.directory = Path(scratch) / f"edges-{uuid.uuid4().hex[:8]}"
        self.directory.mkdir(parents=True)
        self.budget = working_budget(memory_limit)
        self.reverse, self.drop_self_loops, self.dedup = reverse, drop_self_loops, dedup
        self.compact_ids, self.weighted = compact_ids, weighted
        self.cols = 3 if weighted else 2
        self.expected_edges = expected_edges
        self.progress = progress
        self.desc = desc
        self.num_nodes: int | None = None
        self.node_ids: np.ndarray | None = None    # original id of each node, when compacted
        self.input_edges = 0                        # edges added (before options)
        self.partitioned = 0                        # records in buckets (after reverse, loops)
        self.max_id = -1
        self._buckets: _BucketSet | None = None
        self._bar = None
        self._staging = None
        self._finished = False
        if num_nodes is not None and not compact_ids:
            self._start_partition(int(num_nodes))
        else:
            self._staging_path = self.directory / "staging.bin"
            self._staging = open(self._staging_path, "wb")
            self._min_nodes = int(num_nodes or 0)

    # -- sizing
    @property
    def dtype(self) -> np.dtype:
        return index_dtype(self.num_nodes or 0)

    @property
    def _edge_bytes(self) -> int:
        """Sort-phase bytes per edge: loaded record, sorted copy, written copy, weights."""
        isz = self.dtype.itemsize
        return self.cols * isz + 2 * isz + (12 if self.weighted else 0)

    @property
    def _sort_budget(self) -> int:
        """Bytes one sort batch may take: half the budget, the rest is slack for the writers,
        the interpreter and the page cache."""
        return max(1, self.budget // 2)

    def _block_edges(self) -> int:
        """Input edges per partition block: block + records (x2 if reversed) + copies."""
        per_edge = 24 + (2 if self.reverse else 1) * self.cols * self.dtype.itemsize * 2
        return int(max(256, min(1 << 23, self.budget // 2 // per_edge)))

    def _fanout(self, edges: int, nodes: int) -> int:
        """Bucket count: several per budget-sized batch, so skew still packs into batches."""
        batch = self._sort_budget
        need = max(-(-edges * self._edge_bytes // batch), -(-nodes * _NODE_BYTES // batch), 1)
        return int(min(max(need * _BUCKETS_PER_BATCH, 64), _max_open_files(), max(1, nodes)))

    def _start_partition(self, num_nodes: int) -> None:
        self.num_nodes = num_nodes
        expected = self.expected_edges
        if expected is None:
            nb = min(_max_open_files(), max(1, num_nodes))
        else:
            nb = self._fanout(expected * (2 if self.reverse else 1), num_nodes)
        self._buckets = _BucketSet(self.directory / "buckets", 0, num_nodes, nb, self.cols,
                                   self.dtype)
        self._bar = tqdm(total=expected, unit="edge", unit_scale=True, mininterval=0.5,
                         disable=not self.progress, desc=f"partition {self.desc}")

    # -- input
    def add(self, src: np.ndarray, dst: np.ndarray, weight: np.ndarray | None = None,
            where: Callable[[int], str] | None = None) -> None:
        """Add a block of edges src -> dst (int64 node ids). `where(k)` names edge k's origin."""
        if self._finished:
            raise RuntimeError("EdgeCollector.add after finish()")
        src = np.ascontiguousarray(src, np.int64)
        dst = np.ascontiguousarray(dst, np.int64)
        if src.shape != dst.shape or src.ndim != 1:
            raise ConvertError(f"edge block: src shape {src.shape} and dst shape {dst.shape} "
                               f"must be equal and 1-D")
        if self.weighted:
            if weight is None or len(weight) != len(src):
                raise ConvertError("edge block: weights missing or of the wrong length")
            wbits = np.ascontiguousarray(weight, np.float32).view(np.int32).astype(np.int64)
        else:
            wbits = np.empty(0, np.int64)
        self.input_edges += len(src)
        if self._staging is not None:
            if len(src):
                self._stage(src, dst, wbits, where)
            return
        step = self._block_edges()
        for s in range(0, len(src), step):
            self._partition(src[s:s + step], dst[s:s + step], wbits[s:s + step], where, s)

    def _stage(self, src, dst, wbits, where) -> None:
        if min(int(src.min()), int(dst.min())) < 0:
            k = int(np.argmax((src < 0) | (dst < 0)))
            place = where(k) if where else f"edge {k}"
            raise ConvertError(f"{place}: negative node id {min(src[k], dst[k])}")
        self.max_id = max(self.max_id, int(src.max()), int(dst.max()))
        rec = np.empty((len(src), self.cols), np.int64)
        rec[:, 0], rec[:, 1] = src, dst
        if self.weighted:
            rec[:, 2] = wbits
        self._staging.write(memoryview(rec).cast("B"))

    def _partition(self, src, dst, wbits, where, offset) -> None:
        bs = self._buckets
        cap = len(src) * (2 if self.reverse else 1)
        out = np.empty((cap, self.cols), self.dtype)
        starts = np.empty(bs.nb + 1, np.int64)
        n = _partition_edges(src, dst, wbits, self.weighted, self.reverse, self.drop_self_loops,
                             self.num_nodes, bs.width, bs.nb, out, starts)
        if n < 0:
            k = -n - 1
            bad = src[k] if not 0 <= src[k] < self.num_nodes else dst[k]
            place = where(offset + k) if where else f"edge {offset + k}"
            raise ConvertError(f"{place}: node id {bad} out of range [0, {self.num_nodes})")
        bs.write_grouped(out, starts)
        self.partitioned += int(n)
        self._bar.update(len(src))

    def finish(self, min_nodes: int = 0) -> None:
        """Close the input. The node count becomes known: the given count, else max id + 1
        (at least `min_nodes`), or the number of distinct ids when compacting."""
        if self._finished:
            return
        self._finished = True
        if self._staging is not None:
            self._staging.close()
            self._staging = None
            self._replay_staging(min_nodes)
        elif min_nodes > self.num_nodes:
            raise ConvertError(f"{min_nodes} nodes needed but the node count was fixed at "
                               f"{self.num_nodes}")
        self._bar.close()
        self._bucket_list = self._buckets.close()

    def _staging_blocks(self, block: int) -> Iterator[np.ndarray]:
        cols = self.cols
        with open(self._staging_path, "rb") as f:
            while True:
                data = f.read(block * cols * 8)
                if not data:
                    return
                yield np.frombuffer(data, np.int64).reshape(-1, cols)

    def _replay_staging(self, min_nodes: int) -> None:
        block = self._block_edges()
        if self.compact_ids:
            self.node_ids = self._distinct_ids(block)
            n = len(self.node_ids)
            if n == 0:
                raise ConvertError("no edges: compacting ids leaves no nodes")
        else:
            n = max(self.max_id + 1, self._min_nodes, min_nodes, 1)
        self.expected_edges = self.input_edges
        self._start_partition(n)
        pos = 0
        for rec in self._staging_blocks(block):
            src, dst = rec[:, 0], rec[:, 1]
            if self.node_ids is not None:
                src = np.searchsorted(self.node_ids, src)
                dst = np.searchsorted(self.node_ids, dst)
            wb = np.ascontiguousarray(rec[:, 2]) if self.weighted else np.empty(0, np.int64)
            self._partition(np.ascontiguousarray(src), np.ascontiguousarray(dst), wb, None, pos)
            pos += len(rec)
        self._staging_path.unlink()

    def _distinct_ids(self, block: int) -> np.ndarray:
        """Sorted distinct ids of the staged edges, merged as sorted runs (memory ~ ids)."""
        merged = np.empty(0, np.int64)
        pending: list[np.ndarray] = []
        pending_size = 0
        for rec in tqdm(self._staging_blocks(block), disable=not self.progress,
                        desc="distinct ids", unit="block", mininterval=0.5):
            u = np.unique(rec[:, :2])
            pending.append(u)
            pending_size += len(u)
            if pending_size > max(len(merged), block):
                merged = np.unique(np.concatenate([merged] + pending))
                pending, pending_size = [], 0
        return np.unique(np.concatenate([merged] + pending))

    # -- output
    def runs(self) -> Iterator[Run]:
        """Sorted CSC runs in destination order; consumes (deletes) the bucket files."""
        if not self._finished:
            raise RuntimeError("EdgeCollector.runs before finish()")
        bar = tqdm(total=self.partitioned, unit="edge", unit_scale=True, mininterval=0.5,
                   disable=not self.progress, desc=f"sort {self.desc}")
        buckets = self._bucket_list
        i = 0
        with bar:
            while i < len(buckets):
                j, edges = i, 0
                while j < len(buckets):
                    edges_j = edges + buckets[j].records
                    nodes_j = buckets[j].hi - buckets[i].lo
                    if j > i and self._too_big(edges_j, nodes_j):
                        break
                    edges, j = edges_j, j + 1
                group = buckets[i:j]
                if len(group) == 1 and self._too_big(group[0].records, group[0].hi - group[0].lo):
                    yield from self._split_runs(group[0], None, False, bar)
                else:
                    yield self._sort_group(group, bar)
                i = j

    def _too_big(self, edges: int, nodes: int) -> bool:
        return edges * self._edge_bytes + nodes * _NODE_BYTES > self._sort_budget

    def _sort_group(self, group: list[_Bucket], bar) -> Run:
        total = sum(b.records for b in group)
        rec = np.empty((total, self.cols), self.dtype)
        pos = 0
        for b in group:
            _read_records(b, self.cols, self.dtype, rec[pos:pos + b.records])
            pos += b.records
            b.path.unlink()
        run = self._sort_records(rec, group[0].lo, group[-1].hi)
        bar.update(total)
        return run

    def _sort_records(self, rec: np.ndarray, lo: int, hi: int, continues: bool = False) -> Run:
        w_in = (rec[:, 2].astype(np.int32).view(np.float32) if self.weighted
                else np.empty(0, np.float32))
        counts, sources, weights = _sort_batch(rec, w_in, self.weighted, lo, hi - lo,
                                               self.dedup)
        return Run(lo, hi, counts, sources, weights if self.weighted else None, continues)

    def _split_runs(self, bucket: _Bucket, src_range: tuple[int, int] | None, continues: bool,
                    bar) -> Iterator[Run]:
        """Runs of a bucket larger than the budget: partition it again and recurse.

        `src_range` is None while the bucket spans several destinations (split by
        destination); for a single destination it is split by source range.
        """
        if src_range is None and bucket.hi - bucket.lo == 1:
            lo, hi = self._source_range(bucket)
            yield from self._split_runs(bucket, (lo, hi), continues, bar)
            return
        if src_range is not None and src_range[1] - src_range[0] == 1:
            yield from self._single_pair_runs(bucket, src_range[0], continues, bar)
            return
        col, (lo, hi) = (0, (bucket.lo, bucket.hi)) if src_range is None else (1, src_range)
        nb = max(2, self._fanout(bucket.records, hi - lo if src_range is None else 1))
        sub = _BucketSet(bucket.path.with_suffix(".split"), lo, hi, nb, self.cols, self.dtype)
        block = self._block_edges()
        for rec in _iter_records(bucket, self.cols, self.dtype, block):
            out = np.empty_like(rec)
            starts = np.empty(sub.nb + 1, np.int64)
            _partition_records(rec, col, lo, sub.width, sub.nb, out, starts)
            sub.write_grouped(out, starts)
        bucket.path.unlink()
        parts = sub.close()
        for k, part in enumerate(parts):
            cont = continues if k == 0 else src_range is not None
            if src_range is None:
                if self._too_big(part.records, part.hi - part.lo):
                    yield from self._split_runs(part, None, cont, bar)
                else:
                    yield self._sort_group([part], bar)
                continue
            piece = _Bucket(part.path, part.records, bucket.lo, bucket.hi)  # one destination
            if self._too_big(piece.records, 1):
                yield from self._split_runs(piece, (part.lo, part.hi), cont, bar)
            else:
                rec = _read_records(piece, self.cols, self.dtype)
                piece.path.unlink()
                yield self._sort_records(rec, piece.lo, piece.hi, cont)
                bar.update(piece.records)
        shutil.rmtree(sub.directory, ignore_errors=True)

    def _source_range(self, bucket: _Bucket) -> tuple[int, int]:
        lo, hi = None, None
        for rec in _iter_records(bucket, self.cols, self.dtype, self._block_edges()):
            a, b = int(rec[:, 1].min()), int(rec[:, 1].max()) + 1
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
        return lo, hi

    def _single_pair_runs(self, bucket: _Bucket, source: int, continues: bool, bar
                          ) -> Iterator[Run]:
        """A bucket whose records all repeat one edge: stream it without sorting."""
        blocks = _iter_records(bucket, self.cols, self.dtype, self._block_edges())
        if self.dedup:
            total = 0.0
            for rec in blocks:
                if self.weighted:
                    w = rec[:, 2].astype(np.int32).view(np.float32)
                    total += float(w.sum(dtype=np.float64))
                bar.update(len(rec))
            bucket.path.unlink()
            yield Run(bucket.lo, bucket.hi, np.ones(1, np.int64), np.full(1, source, self.dtype),
                      np.array([total], np.float32) if self.weighted else None, continues)
            return
        for k, rec in enumerate(blocks):
            bar.update(len(rec))
            w = rec[:, 2].astype(np.int32).view(np.float32) if self.weighted else None
            yield Run(bucket.lo, bucket.hi, np.array([len(rec)], np.int64),
                      np.full(len(rec), source, self.dtype), w, continues or k > 0)
        bucket.path.unlink()

    def close(self) -> None:
        """Remove every scratch file of this collector."""
        if self._staging is not None:
            self._staging.close()
        if self._buckets is not None:
            for f in self._buckets.files:
                f.close()
        if self._bar is not None:
            self._bar.close()
        shutil.rmtree(self.directory, ignore_errors=True)



class _IndptrStream:
    """Writes indptr from runs, merging runs that continue the previous destination."""

    def __init__(self, writer: ArrayWriter, num_nodes: int, block: int):
        self.writer, self.num_nodes, self.block = writer, num_nodes, block
        self.next_node = 0
        self.offset = 0
        self.pending: tuple[int, np.ndarray] | None = None
        self.degree_min = None
        self.degree_max = 0
        writer.write(np.zeros(1, np.int64))

    def add(self, run: Run) -> None:
        lo, counts = run.lo, run.counts
        if run.continues:
            plo, pcounts = self.pending
            if run.lo != plo + len(pcounts) - 1:
                raise AssertionError(f"run for {run.lo} continues a run ending at "
                                     f"{plo + len(pcounts) - 1}")
            pcounts[-1] += counts[0]
            lo, counts = lo + 1, counts[1:]
            if not len(counts):
                return
        self._flush()
        self.pending = (lo, counts.astype(np.int64, copy=True))

    def _gap(self, upto: int) -> None:
        if upto > self.next_node:
            self.degree_min = 0
        while self.next_node < upto:
            take = min(upto - self.next_node, self.block)
            self.writer.write(np.full(take, self.offset, np.int64))
            self.next_node += take

    def _flush(self) -> None:
        if self.pending is None:
            return
        lo, counts = self.pending
        self.pending = None
        self._gap(lo)
        if len(counts):
            cmin, cmax = int(counts.min()), int(counts.max())
            self.degree_min = cmin if self.degree_min is None else min(self.degree_min, cmin)
            self.degree_max = max(self.degree_max, cmax)
        self.writer.write(self.offset + np.cumsum(counts))
        self.offset += int(counts.sum())
        self.next_node = lo + len(counts)

    def close(self) -> None:
        self._flush()
        self._gap(self.num_nodes)
        self.writer.close()


def write_csc(collector: EdgeCollector, root: Path, chunk_bytes: int) -> CSCStats:
    """Write `indptr`, `indices` (and `edge_weight`) of a finished collector into `root`.

    Without deduplication the edge count is known before sorting and indices
    stream straight into the dataset; with it, they go through a scratch file.
    """
    n = collector.num_nodes
    dtype = index_dtype(n)
    block = max(1024, collector.budget // 64)
    ptr = _IndptrStream(ArrayWriter(root, "indptr", (n + 1,), np.int64, chunk_bytes), n, block)
    if collector.dedup:
        idx = ScratchArray(collector.directory / "indices.bin", dtype)
        wts = (ScratchArray(collector.directory / "weights.bin", np.float32)
               if collector.weighted else None)
    else:
        e = collector.partitioned
        idx = ArrayWriter(root, "indices", (e,), dtype, chunk_bytes)
        wts = (ArrayWriter(root, "edge_weight", (e,), np.float32, chunk_bytes)
               if collector.weighted else None)
    try:
        for run in prefetch(collector.runs()):     # sort the next batch while writing this
            ptr.add(run)
            idx.write(run.sources)
            if wts is not None:
                wts.write(run.weights)
        ptr.close()
        if collector.dedup:
            idx.copy_into(root, "indices", chunk_bytes, block * 8)
            if wts is not None:
                wts.copy_into(root, "edge_weight", chunk_bytes, block * 8)
        else:
            idx.close()
            if wts is not None:
                wts.close()
    except BaseException:
        for w in (idx, wts):
            if isinstance(w, ScratchArray):
                w.discard()
            elif w is not None:
                w.abort()
        raise
    return CSCStats(n, ptr.offset, int(ptr.degree_min or 0), ptr.degree_max,
                    ptr.offset / max(1, n))
