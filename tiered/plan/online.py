"""Policies that do not look ahead: LRU, SIEVE, static (pinned top rows), and no cache.

They exist to compare against Belady and for users who cannot sample ahead.
Each processes a batch's accesses in order, one O(1) step per access, with a
node -> slot map (int32, 4 B per node). A batch is planned as the executor
replays it (read, then update): intermediate states inside a batch are netted,
so a slot's plan entry says only who held it before the batch and after.
"""
from __future__ import annotations

import abc

import numba
import numpy as np

from ..sampling.prefetch import prefetch
from .plan import CacheState, Plan, finish
from .policy import CachePolicy, PolicyState

_AHEAD = 16          # prefetch distance into the node -> slot map


@numba.njit(nogil=True, cache=True, inline="always")
def _touch(s, serial, stamp, init_node, slot_node, dirty, nd):
    if stamp[s] != serial:
        stamp[s] = serial
        init_node[s] = slot_node[s]
        dirty[nd] = s
        nd += 1
    return nd


@numba.njit(nogil=True, cache=True)
def _net(t, nd, dirty, init_node, slot_node, node2slot, adm_row, nm, ne,
         mv_node, mv_slot, mv_src, mv_ptr, ev_node, ev_slot, ev_ptr):
    """Moves and evictions of batch t from the slots it touched."""
    for w in range(nd):
        s = dirty[w]
        x0 = init_node[s]
        x1 = slot_node[s]
        if x0 == x1:
            continue
        if x0 >= 0 and node2slot[x0] < 0:
            ev_node[ne] = x0
            ev_slot[ne] = s
            ne += 1
        if x1 >= 0:
            mv_node[nm] = x1
            mv_slot[nm] = s
            mv_src[nm] = adm_row[s]
            nm += 1
    mv_ptr[t + 1] = nm
    ev_ptr[t + 1] = ne
    return nm, ne


@numba.njit(nogil=True, cache=True, inline="always")
def _unlink(s, newer, older, ends):
    """Remove slot s from the queue; ends[0] = head (newest), ends[1] = tail (oldest)."""
    n = newer[s]
    o = older[s]
    if n >= 0:
        older[n] = o
    else:
        ends[0] = o
    if o >= 0:
        newer[o] = n
    else:
        ends[1] = n


@numba.njit(nogil=True, cache=True, inline="always")
def _push_head(s, newer, older, ends):
    newer[s] = -1
    older[s] = ends[0]
    if ends[0] >= 0:
        newer[ends[0]] = s
    else:
        ends[1] = s
    ends[0] = s


@numba.njit(nogil=True, cache=True)
def _lru(ids, bp, serial0, C, node2slot, slot_node, newer, older, ends, stamp, init_node,
         adm_row, dirty, acc_level, row_loc, mv_node, mv_slot, mv_src, mv_ptr,
         ev_node, ev_slot, ev_ptr):
    """ends = [head (most recent), tail (least recent), slots in use]."""
    nm = 0
    ne = 0
    for t in range(bp.shape[0] - 1):
        a = bp[t]
        nd = 0
        for i in range(a, bp[t + 1]):
            if i + _AHEAD < bp[t + 1]:
                prefetch(node2slot, ids[i + _AHEAD])
            x = ids[i]
            s = node2slot[x]
            if s >= 0:
                acc_level[i] = 0
                row_loc[i] = s
                if ends[0] != s:
                    _unlink(s, newer, older, ends)
                    _push_head(s, newer, older, ends)
                continue
            acc_level[i] = 1
            if C == 0:
                continue
            if ends[2] < C:
                s = ends[2]
                ends[2] += 1
            else:
                s = ends[1]
                _unlink(s, newer, older, ends)
                node2slot[slot_node[s]] = -1
            nd = _touch(s, serial0 + t, stamp, init_node, slot_node, dirty, nd)
            slot_node[s] = x
            node2slot[x] = s
            adm_row[s] = i - a
            _push_head(s, newer, older, ends)
        nm, ne = _net(t, nd, dirty, init_node, slot_node, node2slot, adm_row, nm, ne,
                      mv_node, mv_slot, mv_src, mv_ptr, ev_node, ev_slot, ev_ptr)
    return nm, ne


@numba.njit(nogil=True, cache=True)
def _sieve(ids, bp, serial0, C, node2slot, slot_node, newer, older, visited, ends, stamp,
           init_node, adm_row, dirty, acc_level, row_loc, mv_node, mv_slot, mv_src, mv_ptr,
           ev_node, ev_slot, ev_ptr):
    """SIEVE (Zhang et al., NSDI 2024). ends = [head (newest), tail (oldest), in use, hand]."""
    nm = 0
    ne = 0
    for t in range(bp.shape[0] - 1):
        a = bp[t]
        nd = 0
        for i in range(a, bp[t + 1]):
            if i + _AHEAD < bp[t + 1]:
                prefetch(node2slot, ids[i + _AHEAD])
            x = ids[i]
            s = node2slot[x]
            if s >= 0:
                acc_level[i] = 0
                row_loc[i] = s
                visited[s] = 1
                continue
            acc_level[i] = 1
            if C == 0:
                continue
            if ends[2] < C:
                s = ends[2]
                ends[2] += 1
            else:
                o = ends[3] if ends[3] >= 0 else ends[1]
                while visited[o]:
                    visited[o] = 0
                    o = newer[o] if newer[o] >= 0 else ends[1]
                ends[3] = newer[o]
                _unlink(o, newer, older, ends)
                node2slot[slot_node[o]] = -1
                s = o
            nd = _touch(s, serial0 + t, stamp, init_node, slot_node, dirty, nd)
            slot_node[s] = x
            node2slot[x] = s
            adm_row[s] = i - a
            visited[s] = 0
            _push_head(s, newer, older, ends)
        nm, ne = _net(t, nd, dirty, init_node, slot_node, node2slot, adm_row, nm, ne,
                      mv_node, mv_slot, mv_src, mv_ptr, ev_node, ev_slot, ev_ptr)
    return nm, ne


@numba.njit(nogil=True, cache=True)
def _static(ids, bp, node2slot, used, acc_level, row_loc, mv_node, mv_slot, mv_src, mv_ptr):
    """node2slot: -2 not pinned, -1 pinned but not loaded yet, >= 0 its slot."""
    nm = 0
    for t in range(bp.shape[0] - 1):
        a = bp[t]
        for i in range(a, bp[t + 1]):
            if i + _AHEAD < bp[t + 1]:
                prefetch(node2slot, ids[i + _AHEAD])
            x = ids[i]
            s = node2slot[x]
            if s >= 0:
                acc_level[i] = 0
                row_loc[i] = s
                continue
            acc_level[i] = 1
            if s == -1:
                node2slot[x] = used[0]
                mv_node[nm] = x
                mv_slot[nm] = used[0]
                mv_src[nm] = i - a
                nm += 1
                used[0] += 1
        mv_ptr[t + 1] = nm
    return nm


@numba.njit(nogil=True, cache=True)
def _walk(newer, tail, n):
    """The n queued slots from the tail (oldest) to the head, following `newer`."""
    out = np.empty(n, np.int32)
    s = tail
    for i in range(n):
        out[i] = s
        s = newer[s]
    return out


@numba.njit(nogil=True, cache=True)
def _link(order, newer, older):
    """Queue the slots `order` (oldest first)."""
    newer[:] = -1
    older[:] = -1
    n = order.shape[0]
    for i in range(n):
        s = order[i]
        if i > 0:
            older[s] = order[i - 1]
        if i + 1 < n:
            newer[s] = order[i + 1]


def _buffers(A: int, B: int, n_ev: int):
    moves = [np.zeros(B + 1, np.int64), np.empty(A, np.int32), np.empty(A, np.int32),
             np.empty(A, np.int32)]
    evictions = [np.zeros(B + 1, np.int64), np.empty(n_ev, np.int32), np.empty(n_ev, np.int32)]
    return moves, evictions


def _pack(moves, evictions, nm: int, ne: int):
    """(ptr, ids, level, slot, src_level, src) moves and (ptr, ids, level, slot) evictions
    of a one-level cache, trimmed."""
    ptr, ids, slot, src = moves
    m = (ptr, ids[:nm].copy(), np.zeros(nm, np.int8), slot[:nm].copy(),
         np.full(nm, -1, np.int8), src[:nm].copy())
    eptr, eids, eslot = evictions
    e = (eptr, eids[:ne].copy(), np.zeros(ne, np.int8), eslot[:ne].copy())
    return m, e


class _SlotMapPolicy(CachePolicy):
    """Shared state of the one-level online policies: node -> slot and slot -> node maps."""

    def __init__(self, capacity, num_nodes: int):
        super().__init__(capacity, num_nodes)
        self.C = self.capacities[0]
        self.node2slot = np.full(self.num_nodes, -1, np.int32)
        self.slot_node = np.full(self.C, -1, np.int32)

    @abc.abstractmethod
    def _order(self) -> np.ndarray:
        """The occupied slots in the policy's order (int32)."""

    def _contents(self) -> CacheState:
        slots = self._order()
        return CacheState(self.slot_node[slots], np.zeros(len(slots), np.int8), slots)

    def state(self) -> PolicyState:
        return self._make_state(self._contents())

    def _restore(self, state: PolicyState) -> None:
        """Maps from the state; slots fill from 0 up, so they must be 0..n-1."""
        c = state.cache
        if not np.array_equal(np.sort(c.slot), np.arange(len(c.slot))):
            raise ValueError(f"{self.name}: a state's slots must be 0..{len(c.slot) - 1} "
                             f"(this policy fills slots in order)")
        self.node2slot[self.slot_node[self.slot_node >= 0]] = -1     # static: pinned, not loaded
        self.slot_node[:] = -1
        self.slot_node[c.slot] = c.node
        self.node2slot[c.node] = c.slot

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))



class _QueuePolicy(_SlotMapPolicy):
    """LRU and SIEVE: a queue over the slots (newer/older links), netted per batch."""

    def __init__(self, capacity, num_nodes: int):
        super().__init__(capacity, num_nodes)
        self.newer = np.full(self.C, -1, np.int32)
        self.older = np.full(self.C, -1, np.int32)
        self._serial = 0                              # batches planned so far
        self._stamp = np.full(self.C, -1, np.int64)   # last batch that touched each slot
        self._init = np.empty(self.C, np.int32)       # its occupant before that batch
        self._adm = np.empty(self.C, np.int32)        # batch row that filled it
        self._dirty = np.empty(self.C, np.int32)

    @abc.abstractmethod
    def _queue(self) -> tuple:
        """The policy's own queue arrays, as its kernel takes them."""

    def _order(self) -> np.ndarray:
        return _walk(self.newer, self.ends[1], int(self.ends[2]))

    def _blank(self) -> "_QueuePolicy":
        return type(self)(self.C, self.num_nodes)

    def _restore(self, state: PolicyState) -> None:
        super()._restore(state)
        order = state.cache.slot.astype(np.int32)
        _link(order, self.newer, self.older)
        n = len(order)
        self.ends[:3] = (order[-1], order[0], n) if n else (-1, -1, 0)
        self._stamp[:] = -1

    def _plan(self, ids, bp) -> Plan:
        A, B = len(ids), len(bp) - 1
        state_in = self._contents()
        moves, evictions = _buffers(A, B, A)
        acc_level = np.empty(A, np.int8)
        row_loc = np.empty(A, np.int32)
        nm, ne = self._kernel(ids, bp, self._serial, self.C, self.node2slot, self.slot_node,
                              *self._queue(), self._stamp, self._init, self._adm, self._dirty,
                              acc_level, row_loc, *moves[1:], moves[0], *evictions[1:],
                              evictions[0])
        self._serial += B
        m, e = _pack(moves, evictions, nm, ne)
        return finish(self.name, self.capacities, ids, bp, self.num_nodes, acc_level, row_loc,
                      m, e, state_in, self._contents())


class LRUPolicy(_QueuePolicy):
    """Least recently used, one level. State order: least recently used first."""

    name = "lru"
    _kernel = staticmethod(_lru)

    def __init__(self, capacity, num_nodes: int):
        super().__init__(capacity, num_nodes)
        self.ends = np.array([-1, -1, 0], np.int64)      # head, tail, slots in use

    def _queue(self) -> tuple:
        return self.newer, self.older, self.ends


class SievePolicy(_QueuePolicy):
    """SIEVE: a FIFO queue with visited bits and a hand that spares visited rows once.

    State: rows in FIFO order (oldest first), their visited bits, the hand's position.
    """

    name = "sieve"
    _kernel = staticmethod(_sieve)

    def __init__(self, capacity, num_nodes: int):
        super().__init__(capacity, num_nodes)
        self.visited = np.zeros(self.C, np.uint8)
        self.ends = np.array([-1, -1, 0, -1], np.int64)  # head, tail, slots in use, hand

    def _queue(self) -> tuple:
        return self.newer, self.older, self.visited, self.ends

    def state(self) -> PolicyState:
        c = self._contents()
        at = np.flatnonzero(c.slot == self.ends[3])
        return self._make_state(c, visited=self.visited[c.slot].copy(),
                                hand=int(at[0]) if len(at) else -1)

    def _restore(self, state: PolicyState) -> None:
        n = len(state.cache)
        if len(state.visited) not in (0, n) or not -1 <= state.hand < max(n, 1):
            raise ValueError(f"sieve: state of {n} rows has {len(state.visited)} visited bits "
                             f"and hand {state.hand}")
        super()._restore(state)
        self.visited[:] = 0
        if len(state.visited):
            self.visited[state.cache.slot] = state.visited
        self.ends[3] = state.cache.slot[state.hand] if state.hand >= 0 else -1


class StaticPolicy(_SlotMapPolicy):
    """The `capacity` rows of highest `score` (in-degree, or sampled frequency), pinned.

    A pinned row is loaded the first time a batch needs it and never evicted;
    every other row is read from the backing tier each time.
    """

    name = "static"

    def __init__(self, capacity, num_nodes: int, score: np.ndarray):
        super().__init__(capacity, num_nodes)
        score = np.asarray(score)
        if len(score) != self.num_nodes:
            raise ValueError(f"static: score has {len(score)} entries, expected {self.num_nodes}")
        self.node2slot[:] = -2
        top = np.argsort(-score.astype(np.float64), kind="stable")[: self.C]
        self.pinned = top.astype(np.int32)          # the rows this policy may cache
        self.node2slot[self.pinned] = -1
        self.used = np.zeros(1, np.int64)

    def _blank(self) -> "StaticPolicy":
        score = np.zeros(self.num_nodes, np.float32)
        score[self.pinned] = 1
        return StaticPolicy(self.C, self.num_nodes, score)

    def _order(self) -> np.ndarray:
        return np.arange(self.used[0], dtype=np.int32)

    def _restore(self, state: PolicyState) -> None:
        if np.any(self.node2slot[state.cache.node] == -2):
            raise ValueError("static: the state caches rows outside the pinned set of this "
                             "policy's score")
        super()._restore(state)
        self.used[0] = len(state.cache)

    def _plan(self, ids, bp) -> Plan:
        A, B = len(ids), len(bp) - 1
        state_in = self._contents()
        moves, evictions = _buffers(A, B, 0)
        acc_level = np.empty(A, np.int8)
        row_loc = np.empty(A, np.int32)
        nm = _static(ids, bp, self.node2slot, self.used, acc_level, row_loc, *moves[1:], moves[0])
        self.slot_node[moves[2][:nm]] = moves[1][:nm]
        m, e = _pack(moves, evictions, nm, 0)
        return finish(self.name, self.capacities, ids, bp, self.num_nodes, acc_level, row_loc,
                      m, e, state_in, self._contents())


class NoCache(CachePolicy):
    """No cache: every row of every batch is read from the backing tier."""

    name = "none"

    def __init__(self, num_nodes: int):
        super().__init__((0,), num_nodes)

    def state(self) -> PolicyState:
        return self._make_state(CacheState.empty())

    def _blank(self) -> "NoCache":
        return NoCache(self.num_nodes)

    def _restore(self, state: PolicyState) -> None:
        if len(state.cache):
            raise ValueError(f"none: the state caches {len(state.cache)} rows; this policy "
                             f"caches nothing")

    @property
    def nbytes(self) -> int:
        return 0

    def _plan(self, ids, bp) -> Plan:
        A, B = len(ids), len(bp) - 1
        moves, evictions = _buffers(0, B, 0)
        m, e = _pack(moves, evictions, 0, 0)
        return finish(self.name, self.capacities, ids, bp, self.num_nodes, np.ones(A, np.int8),
                      np.empty(A, np.int32), m, e, CacheState.empty(), CacheState.empty())
