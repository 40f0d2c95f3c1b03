"""The plan: the only contract between the inspector and the executor.

For a superbatch of B batches and a cache of K levels (level 0 = DRAM, level
1 = e.g. PMem, ...; `capacities[k]` slots each) above the backing tier (level
K, where every row lives), the plan says, per batch b, in flat arrays sliced
by the `*_ptr` offsets (CSR-like):

- rows `row_ids[batch_ptr[b]:batch_ptr[b+1]]`: the batch's n_id (the trace), and
  `row_loc` for each: >= 0 is the level-0 slot that holds the row (a DRAM hit);
  -(j+1) means "load j of this batch".
- loads `load_ids` with `load_level` (1..K-1: a cache level, read at slot
  `load_slot`; K: the backing tier, read by node id, `load_slot` = -1), sorted by
  (level, id) so the backing-tier reads of a batch are one sorted run.
- moves, applied after the batch is assembled: row `move_ids` goes to slot
  `move_slot` of level `move_level`, copied from the batch's assembled row
  `move_src` (when `move_src_level` = -1) or from slot `move_src` of level
  `move_src_level` (a demotion). Moves of a batch are simultaneous: read every
  source first, then write.
- evictions `evict_ids` at (`evict_level`, `evict_slot`): rows that leave the
  cache entirely in this batch (what a learnable table writes back). Their
  slots may be a destination of this batch's moves, so read them first.

Executor order per batch: read loads -> assemble rows (row_loc) -> [write back
evicted dirty rows] -> read move sources -> write move destinations. Slots of
rows the batch reads are never overwritten before the batch is assembled.
`state_in` / `state_out` are the cache contents before and after; the next
superbatch's plan starts from this one's `state_out`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np

from ..sampling.radix import bit_length, radix_sort

_MAX_RUNS = 16          # loads in at most this many sorted runs are merged, not sorted


@dataclass
class CacheState:
    """Cache contents: row `node[i]` sits in slot `slot[i]` of level `level[i]` (in the policy's
    priority order, oldest first for Belady)."""

    node: np.ndarray        # int32
    level: np.ndarray       # int8
    slot: np.ndarray        # int32

    @classmethod
    def empty(cls) -> "CacheState":
        return cls(np.empty(0, np.int32), np.empty(0, np.int8), np.empty(0, np.int32))

    def __len__(self) -> int:
        return len(self.node)


@dataclass
class BatchPlan:
    """One batch's slice of a plan (views)."""

    row_ids: np.ndarray
    row_loc: np.ndarray
    load_ids: np.ndarray
    load_level: np.ndarray
    load_slot: np.ndarray
    move_ids: np.ndarray
    move_level: np.ndarray
    move_slot: np.ndarray
    move_src_level: np.ndarray
    move_src: np.ndarray
    evict_ids: np.ndarray
    evict_level: np.ndarray
    evict_slot: np.ndarray


_SECTIONS = {"batch_ptr": ("row_ids", "row_loc"),
             "load_ptr": ("load_ids", "load_level", "load_slot"),
             "move_ptr": ("move_ids", "move_level", "move_slot", "move_src_level", "move_src"),
             "evict_ptr": ("evict_ids", "evict_level", "evict_slot")}


@dataclass
class Plan:
    """Loads, placements, moves and evictions of every batch of one superbatch (see module doc)."""

    policy: str
    capacities: np.ndarray      # int64 (K,)
    batch_ptr: np.ndarray       # int64 (B+1,)
    row_ids: np.ndarray         # int32 (A,)
    row_loc: np.ndarray         # int32 (A,)
    load_ptr: np.ndarray        # int64 (B+1,)
    load_ids: np.ndarray        # int32
    load_level: np.ndarray      # int8
    load_slot: np.ndarray       # int32
    move_ptr: np.ndarray        # int64 (B+1,)
    move_ids: np.ndarray        # int32
    move_level: np.ndarray      # int8
    move_slot: np.ndarray       # int32
    move_src_level: np.ndarray  # int8
    move_src: np.ndarray        # int32
    evict_ptr: np.ndarray       # int64 (B+1,)
    evict_ids: np.ndarray       # int32
    evict_level: np.ndarray     # int8
    evict_slot: np.ndarray      # int32
    state_in: CacheState
    state_out: CacheState

    @property
    def num_batches(self) -> int:
        return len(self.batch_ptr) - 1

    @property
    def num_levels(self) -> int:
        return len(self.capacities)

    def __len__(self) -> int:
        return self.num_batches

    def batch(self, b: int) -> BatchPlan:
        kw = {}
        for p, names in _SECTIONS.items():
            ptr = getattr(self, p)
            for n in names:
                kw[n] = getattr(self, n)[ptr[b]:ptr[b + 1]]
        return BatchPlan(**kw)

    def loads_per_level(self) -> np.ndarray:
        """Rows read from each level 1..K (index k-1), over the whole superbatch."""
        return np.bincount(self.load_level, minlength=self.num_levels + 1)[1:]

    @property
    def backing_loads(self) -> int:
        """Rows read from the backing tier (the cache misses of the last level)."""
        return int(np.count_nonzero(self.load_level == self.num_levels))

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if isinstance(getattr(self, f.name), np.ndarray))

    def save(self, path) -> None:
        """Write the plan to an .npz file (replay it with Plan.load)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        for which in ("state_in", "state_out"):
            st = getattr(self, which)
            arrays.update({f"{which}_node": st.node, f"{which}_level": st.level,
                           f"{which}_slot": st.slot})
        np.savez(path, policy=np.array(self.policy), **arrays)

    @classmethod
    def load(cls, path) -> "Plan":
        with np.load(path) as z:
            kw = {k: z[k] for k in z.files if not k.startswith("state_") and k != "policy"}
            for which in ("state_in", "state_out"):
                kw[which] = CacheState(z[f"{which}_node"], z[f"{which}_level"], z[f"{which}_slot"])
            return cls(policy=str(z["policy"]), **kw)


@numba.njit(nogil=True, parallel=True, cache=True)
def _count_loads(bp, acc_level, counts):
    for b in numba.prange(bp.shape[0] - 1):
        n = 0
        for i in range(bp[b], bp[b + 1]):
            if acc_level[i] > 0:
                n += 1
        counts[b] = n


@numba.njit(nogil=True, cache=True)
def _sorted_positions(ids, a, pos, id_bits):
    """Order the batch rows `pos` (offsets from a) by node id.

    A sampled batch's rows are a few sorted runs (seeds, then each hop's new
    nodes), so its loads are merged pairwise from their runs (a pass or two);
    anything with more than _MAX_RUNS runs is radix sorted.
    """
    n = pos.shape[0]
    packed = np.empty(n, np.int64)
    starts = np.empty(_MAX_RUNS + 1, np.int64)
    r = 0
    for j in range(n):
        packed[j] = (np.int64(ids[a + pos[j]]) << 32) | pos[j]
        if r >= 0 and (j == 0 or packed[j] < packed[j - 1]):
            if r == _MAX_RUNS:
                r = -1
            else:
                starts[r] = j
                r += 1
    tmp = np.empty(n, np.int64)
    if r < 0:
        packed = radix_sort(packed, tmp, 32, 32 + id_bits)
    else:
        starts[r] = n
        while r > 1:                                  # merge neighbouring runs pairwise
            w = 0
            for q in range(0, r, 2):
                lo = starts[q]
                if q + 1 == r:
                    tmp[lo:n] = packed[lo:n]
                    starts[w] = lo
                    w += 1
                    break
                mid = starts[q + 1]
                hi = starts[q + 2]
                i, j, o = lo, mid, lo
                while i < mid and j < hi:
                    x = packed[i]
                    y = packed[j]
                    take = y < x
                    tmp[o] = y if take else x
                    j += take
                    i += 1 - take
                    o += 1
                tmp[o:o + mid - i] = packed[i:mid]
                o += mid - i
                tmp[o:o + hi - j] = packed[j:hi]
                starts[w] = lo
                w += 1
            starts[w] = n
            r = w
            packed, tmp = tmp, packed
    out = np.empty(n, np.int32)
    for j in range(n):
        out[j] = packed[j] & 0xFFFFFFFF
    return out


@numba.njit(nogil=True, parallel=True, cache=True)
def _fill_loads(ids, bp, acc_level, row_loc, lp, id_bits, load_ids, load_level, load_slot, K):
    """Each batch's rows read outside level 0, sorted by (level, id), become its loads;
    row_loc points at them."""
    for b in numba.prange(bp.shape[0] - 1):
        a = bp[b]
        cnt = np.zeros(K + 2, np.int64)
        for i in range(a, bp[b + 1]):
            cnt[acc_level[i] + 1] += 1
        for lv in range(1, K + 1):
            cnt[lv + 1] += cnt[lv]
        grouped = np.empty(cnt[K + 1] - cnt[1], np.int32)
        fill = cnt.copy()
        for i in range(a, bp[b + 1]):
            lv = acc_level[i]
            if lv > 0:
                grouped[fill[lv] - cnt[1]] = i - a
                fill[lv] += 1
        for lv in range(1, K + 1):
            g0 = cnt[lv] - cnt[1]
            g1 = cnt[lv + 1] - cnt[1]
            order = _sorted_positions(ids, a, grouped[g0:g1], id_bits)
            for j in range(g1 - g0):
                i = a + order[j]
                o = lp[b] + g0 + j
                load_ids[o] = ids[i]
                load_level[o] = lv
                load_slot[o] = row_loc[i] if lv < K else -1
                row_loc[i] = -(g0 + j + 1)


def finish(policy: str, capacities, ids: np.ndarray, bp: np.ndarray, num_nodes: int,
           acc_level: np.ndarray, row_loc: np.ndarray, moves: tuple, evictions: tuple,
           state_in: CacheState, state_out: CacheState) -> Plan:
    """Build a Plan from a policy's per-access result.

    acc_level[i] is the level row i is read from (0..K-1 a cache level, K the
    backing tier) and row_loc[i] its slot there; moves = (ptr, ids, level, slot,
    src_level, src), evictions = (ptr, ids, level, slot). row_loc is rewritten in place.
    """
    K = len(capacities)
    counts = np.empty(len(bp) - 1, np.int64)
    _count_loads(bp, acc_level, counts)
    lp = np.zeros(len(bp), np.int64)
    np.cumsum(counts, out=lp[1:])
    id_bits = max(1, bit_length(max(num_nodes - 1, 1)))
    n = int(lp[-1])
    load_ids = np.empty(n, np.int32)
    load_level = np.empty(n, np.int8)
    load_slot = np.empty(n, np.int32)
    _fill_loads(ids, bp, acc_level, row_loc, lp, id_bits, load_ids, load_level, load_slot, K)
    return Plan(policy, np.asarray(capacities, np.int64), bp, ids, row_loc, lp, load_ids,
                load_level, load_slot, *moves, *evictions, state_in, state_out)
