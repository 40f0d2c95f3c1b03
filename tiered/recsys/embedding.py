"""A learnable embedding table on a tier, cached in a DRAM slab that replays the inspector's plan.

Every row is (1 + s, dim) float32: the parameters and the row optimizer's
state (tiered/recsys/optim.py), read and written together. Per batch:

1. `gather(bp)`: read the plan's loads from the backing tier (one sorted,
   page-coalesced request) and assemble the batch's rows in n_id order from the
   slab and the loads;
2. the caller computes gradients of the parameter rows; `update(bp, rows,
   grad)` applies the optimizer to the batch's rows in place, then writes back
   as the plan says: rows that stay cached go to their slab slots, rows the plan
   admits go to their new slots, and the batch's rows that leave DRAM are
   written to the backing tier, as are the plan's evictions of dirty slots (a
   bypass of an updated row is a write too).
3. `flush()` at the end of an epoch writes every dirty slot back and syncs, so
   the backing tier then holds the whole table.

The slab keeps a row -> slot map (int32, 4 bytes per table row). A row in the
slab is always served from it: online policies (LRU, SIEVE) plan a batch as
accesses in order and may evict a row and re-admit it within one batch, so
their plan loads a row whose newest value is still in the slab; for read-only
features that costs one wasted read, for a learnable row the stored copy
would be stale.

Write-backs follow from the plan: every miss of a row that the batch then
updates costs exactly one write later (at its eviction, its bypass, or the
epoch's flush), so Belady's minimum of misses is also the minimum of
write-backs, up to the rows a flush cleans. `io_counts(plan)` replays a plan's
reads and writes per batch without moving rows. One cache level (the DRAM slab
over the backing tier) is supported: the slab is where rows are updated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numba
import numpy as np

from ..gather import as_byte_rows, assemble_rows, copy_rows
from ..plan.plan import BatchPlan, Plan
from ..tiers.base import Tier
from .optim import RowOptimizer


@numba.njit(nogil=True, cache=True)
def _apply_plan(row_ids, move_ids, move_slot, evict_slot, node_slot, slot_node, dirty, cur,
                leaving, leaving_ids, stays):
    """Update the slab's maps for one batch (rows themselves are copied by the caller).

    cur[i]: slot of batch row i at the batch start (-1: not cached); the batch
    updates those slots. leaving / leaving_ids: evicted slots, and their rows, to
    write back (dirty and not holding a batch row, whose newest value is in the
    batch). stays[i]: batch row i is cached after the batch. Returns the number
    of leaving slots.
    """
    n = row_ids.shape[0]
    touched = np.zeros(slot_node.shape[0], np.bool_)
    for i in range(n):
        s = node_slot[row_ids[i]]
        cur[i] = s
        if s >= 0:
            touched[s] = True
            dirty[s] = True
    nl = 0
    for o in range(evict_slot.shape[0]):
        s = evict_slot[o]
        x = slot_node[s]
        if x >= 0:
            if dirty[s] and not touched[s]:
                leaving[nl] = s
                leaving_ids[nl] = x
                nl += 1
            node_slot[x] = -1
        slot_node[s] = -1
        dirty[s] = False
    for o in range(move_ids.shape[0]):         # a row moving to another slot frees its old one
        s = node_slot[move_ids[o]]
        if s >= 0:
            slot_node[s] = -1
            dirty[s] = False
    for o in range(move_ids.shape[0]):
        s = move_slot[o]
        slot_node[s] = move_ids[o]
        node_slot[move_ids[o]] = s
        dirty[s] = True
    for i in range(n):
        stays[i] = node_slot[row_ids[i]] >= 0
    return nl


@numba.njit(nogil=True, cache=True)
def _io_counts(bp, row_ids, mp, move_ids, move_slot, ep, evict_slot, node_slot, slot_node,
               dirty, reads, writes):
    """_apply_plan's bookkeeping over a whole plan, counting backing reads and writes."""
    for b in range(bp.shape[0] - 1):
        a, z = bp[b], bp[b + 1]
        n = z - a
        cur = np.empty(n, np.int64)
        leaving = np.empty(ep[b + 1] - ep[b], np.int64)
        stays = np.empty(n, np.bool_)
        nl = _apply_plan(row_ids[a:z], move_ids[mp[b]:mp[b + 1]], move_slot[mp[b]:mp[b + 1]],
                         evict_slot[ep[b]:ep[b + 1]], node_slot, slot_node, dirty, cur,
                         leaving, leaving.copy(), stays)
        r = 0
        w = nl
        for i in range(n):
            if cur[i] < 0:
                r += 1
            if not stays[i]:
                w += 1
        reads[b] = r
        writes[b] = w


@dataclass
class TableStats:
    """Row traffic of the table since the last reset."""

    batches: int = 0
    rows: int = 0                 # batch rows served
    hits: int = 0                 # from the DRAM slab
    loads: int = 0                # read from the backing tier
    writebacks: int = 0           # written to the backing tier (evictions, bypasses, flushes)
    bytes_read: int = 0
    bytes_written: int = 0
    read_seconds: float = 0.0
    write_seconds: float = 0.0

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["hit_rate"] = self.hits / max(self.rows, 1)
        return d


class EmbeddingTable:
    """(num_rows, dim) learnable rows on `backing` with a DRAM slab of `capacity` rows.

    The backing tier's rows must be float32 of shape (1 + optimizer.state_rows, dim)
    and writable. Plans must come from a single-level policy with this capacity.
    """

    def __init__(self, backing: Tier, optimizer: RowOptimizer, capacity: int):
        want = 1 + optimizer.state_rows
        if backing.dtype != np.float32 or len(backing.row_shape) != 2 or backing.row_shape[0] != want:
            raise ValueError(f"{backing.name}: table rows must be float32 of shape ({want}, dim) "
                             f"for the {optimizer.name} optimizer; found {backing.dtype} "
                             f"{backing.row_shape}")
        if not 0 <= capacity <= backing.num_rows:
            raise ValueError(f"{backing.name}: cache capacity {capacity} rows outside "
                             f"[0, {backing.num_rows}]")
        self.backing = backing
        self.optimizer = optimizer
        self.num_rows = backing.num_rows
        self.row_shape = backing.row_shape
        self.dim = backing.row_shape[1]
        self.capacity = int(capacity)
        self.slab = np.zeros((self.capacity,) + self.row_shape, np.float32)
        self.slot_node = np.full(self.capacity, -1, np.int64)
        self.node_slot = np.full(self.num_rows if self.capacity else 0, -1, np.int32)
        self.dirty = np.zeros(self.capacity, np.bool_)
        self.stats = TableStats()
        self._rows = np.empty((0,) + self.row_shape, np.float32)
        self._staging = np.empty((0,) + self.row_shape, np.float32)
        self._out = np.empty((0,) + self.row_shape, np.float32)

    @property
    def nbytes(self) -> int:
        """DRAM held: the slab, its maps and the batch row buffers."""
        return sum(a.nbytes for a in (self.slab, self.slot_node, self.node_slot, self.dirty,
                                      self._rows, self._staging, self._out))

    def reset_stats(self) -> TableStats:
        old, self.stats = self.stats, TableStats()
        return old

    # ---- one batch ------------------------------------------------------------------
    def gather(self, bp: BatchPlan) -> np.ndarray:
        """The batch's rows (parameters and state) in n_id order: a buffer valid until the
        next gather."""
        self._check_plan(bp)
        n = len(bp.row_ids)
        rows = self._buffer("_rows", n)
        t0 = time.perf_counter()
        before = self.backing.stats.bytes_read
        if self.capacity == 0:              # no slab: read straight into batch order
            self.backing.read_rows(bp.row_ids, rows)
            loaded = n
        else:
            staging = self._buffer("_staging", len(bp.load_ids))
            cached = self.node_slot[bp.load_ids]          # loads that are in the slab after all
            miss = np.flatnonzero(cached < 0)
            loaded = len(miss)
            if loaded == len(bp.load_ids):
                self.backing.read_rows(bp.load_ids, staging)
            else:
                self.backing.read_rows(bp.load_ids[miss], self._buffer("_out", loaded))
                copy_rows(as_byte_rows(staging), miss, as_byte_rows(self._out), np.arange(loaded))
                hit = np.flatnonzero(cached >= 0)
                copy_rows(as_byte_rows(staging), hit, as_byte_rows(self.slab),
                           cached[hit].astype(np.int64))
            assemble_rows(as_byte_rows(self.slab), as_byte_rows(staging), bp.row_loc,
                      as_byte_rows(rows))
        self.stats.bytes_read += self.backing.stats.bytes_read - before
        self.stats.read_seconds += time.perf_counter() - t0
        st = self.stats
        st.batches += 1
        st.rows += n
        st.loads += loaded
        st.hits += n - loaded
        return rows

    def update(self, bp: BatchPlan, rows: np.ndarray, grad: np.ndarray) -> None:
        """Apply the optimizer to the batch's rows, then write them back as the plan says."""
        self.optimizer.step(rows, grad)
        self.write_back(bp, rows)

    def write_back(self, bp: BatchPlan, rows: np.ndarray) -> None:
        """Store the batch's (updated) rows: slab slots for cached rows, the backing tier for
        rows leaving DRAM (see the module docstring)."""
        self._check_plan(bp)
        if self.capacity == 0:
            self._write(bp.row_ids, rows)
            return
        n = len(bp.row_ids)
        slab, r = as_byte_rows(self.slab), as_byte_rows(rows)
        cur = np.empty(n, np.int64)
        leaving = np.empty(len(bp.evict_slot), np.int64)
        leaving_ids = np.empty(len(bp.evict_slot), np.int64)
        stays = np.empty(n, np.bool_)
        nl = _apply_plan(bp.row_ids, bp.move_ids, bp.move_slot, bp.evict_slot, self.node_slot,
                         self.slot_node, self.dirty, cur, leaving, leaving_ids, stays)
        held = np.flatnonzero(cur >= 0)         # rows cached at the batch start: new values
        copy_rows(slab, cur[held], r, held)
        if nl:                                  # dirty rows leaving the slab, by id
            leaving, ids = leaving[:nl], leaving_ids[:nl]
            order = np.argsort(ids)
            out = self._buffer("_out", nl)
            copy_rows(as_byte_rows(out), np.arange(nl), slab, leaving[order])
            self._write(ids[order], out)
        copy_rows(slab, bp.move_slot.astype(np.int64), r, bp.move_src.astype(np.int64))
        gone = np.flatnonzero(~stays)           # batch rows not cached after the batch
        if len(gone):
            ids = bp.row_ids[gone].astype(np.int64)
            order = np.argsort(ids)
            out = self._buffer("_out", len(gone))
            copy_rows(as_byte_rows(out), np.arange(len(gone)), r, gone[order])
            self._write(ids[order], out)

    def flush(self) -> int:
        """Write every dirty slot to the backing tier (and sync it); returns rows written."""
        s = np.flatnonzero(self.dirty & (self.slot_node >= 0))
        s = s[np.argsort(self.slot_node[s])]
        self._write(self.slot_node[s], self.slab[s])
        self.dirty[s] = False
        sync = getattr(self.backing, "flush", None)
        if sync is not None:
            sync()
        return len(s)

    # ---- whole-table access ------------------------------------------------------------
    def read_params(self, ids: np.ndarray) -> np.ndarray:
        """Current parameter rows (n, dim) of `ids`; call after flush() (slab rows are
        otherwise newer than the backing tier's)."""
        return np.ascontiguousarray(self.backing.read_rows(np.asarray(ids, np.int64))[:, 0, :])

    def params(self, block_rows: int = 1 << 16) -> np.ndarray:
        """The whole parameter matrix (num_rows, dim) in DRAM, after a flush."""
        self.flush()
        out = np.empty((self.num_rows, self.dim), np.float32)
        for a in range(0, self.num_rows, block_rows):
            ids = np.arange(a, min(self.num_rows, a + block_rows), dtype=np.int64)
            out[a:a + len(ids)] = self.backing.read_rows(ids)[:, 0, :]
        return out

    def table(self) -> np.ndarray:
        """Every row with its optimizer state (num_rows, 1 + s, dim), after a flush."""
        self.flush()
        return self.backing.read_rows(np.arange(self.num_rows, dtype=np.int64))

    # ---- internals ---------------------------------------------------------------------
    def _write(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Write distinct rows (in id order where it matters: the flush and write-backs)."""
        if not len(ids):
            return
        t0 = time.perf_counter()
        before = self.backing.stats.bytes_written
        self.backing.write_rows(ids, rows)
        self.stats.bytes_written += self.backing.stats.bytes_written - before
        self.stats.write_seconds += time.perf_counter() - t0
        self.stats.writebacks += len(ids)

    def _buffer(self, name: str, n: int) -> np.ndarray:
        """A reused (n, *row_shape) row buffer (grown by a quarter when too small)."""
        buf = getattr(self, name)
        if buf.shape[0] < n:
            buf = np.empty((max(n, int(buf.shape[0] * 1.25)),) + self.row_shape, np.float32)
            setattr(self, name, buf)
        return buf[:n]

    def _check_plan(self, bp: BatchPlan) -> None:
        """A single-level plan for this slab (numba kernels index the slab unchecked)."""
        if (len(bp.load_level) and bp.load_level.max() > 1) or \
                (len(bp.move_src_level) and bp.move_src_level.max() >= 0):
            raise ValueError(f"{self.backing.name}: the plan has several cache levels; a learnable "
                             f"table takes a single-level plan (DRAM slab over its tier)")
        top = max(int(bp.row_loc.max(initial=-1)), int(bp.move_slot.max(initial=-1)),
                  int(bp.evict_slot.max(initial=-1)))
        if top >= self.capacity:
            raise ValueError(f"{self.backing.name}: the plan uses slot {top}, the DRAM slab has "
                             f"{self.capacity} rows; build the policy with capacity {self.capacity}")


def io_counts(plan: Plan, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(reads, writes) per batch of `plan` for a table of `num_rows` rows that every batch
    updates, starting from the plan's `state_in` with every cached row dirty: what
    EmbeddingTable.gather/update would read from and write to the backing tier."""
    cap = int(plan.capacities[0]) if plan.num_levels else 0
    node_slot = np.full(num_rows, -1, np.int32)
    slot_node = np.full(cap, -1, np.int64)
    on0 = plan.state_in.level == 0
    node_slot[plan.state_in.node[on0]] = plan.state_in.slot[on0]
    slot_node[plan.state_in.slot[on0]] = plan.state_in.node[on0]
    dirty = slot_node >= 0
    reads = np.empty(plan.num_batches, np.int64)
    writes = np.empty(plan.num_batches, np.int64)
    _io_counts(plan.batch_ptr, plan.row_ids, plan.move_ptr, plan.move_ids, plan.move_slot,
               plan.evict_ptr, plan.evict_slot, node_slot, slot_node, dirty, reads, writes)
    return reads, writes
