"""Belady's optimal plan for a cache of one or more levels, from a superbatch's access trace.

Batch semantics: batch t reads its rows from the cache as it stands, then the
cache keeps, of (its rows) U (the batch's rows), the C with the soonest next use
(bypass allowed: a missed row need not be cached). Each access opens an
interval from it to the row's next use; the cache state is the set of
intervals kept. Priority = (next-use batch, then insertion order), the same for
every capacity, so K caches of capacities c_0 < c_1 < ... are nested
(Mattson's inclusion property) and level k holds the rows in cache c_k but not
in c_{k-1}. See docs/inspector.md for the optimality argument.

The algorithm never looks at a node outside the trace and keeps no per-node
state across steps. One backward pass finds each access's next use (a node-sized
int32 scratch, tagged per superbatch so it is never cleared). Intervals are then laid out bucket by bucket
(bucket = batch of the next use, B = no next use in this superbatch), in
insertion order. Evicting "the farthest next use, oldest first" only ever cuts
a prefix off the highest non-empty bucket, so each cache level is a vector of
per-bucket cut counters: an interval is in level-k cache iff its rank in its
bucket is >= cut[k, bucket]. Time O(accesses K + B^2 K), memory ~30 B per access
while building. Rows with no further use in the superbatch are kept oldest-out
and carry over, in order, to the next superbatch, with each level's free-slot
stack. Stopping after any batch gives the state there (cached intervals bucket by
bucket): restored, it plans the rest of the superbatch exactly as the whole run did.
"""
from __future__ import annotations

import numba
import numpy as np

from ..sampling.prefetch import prefetch
from .plan import CacheState, Plan, finish
from .policy import CachePolicy, PolicyState
from .trace import AccessTrace

_LOW32 = np.int64(0xFFFFFFFF)
_SHIFT = 12          # accesses per entry of the access -> batch table
_AHEAD = 16          # prefetch distance into the node-sized scratch


@numba.njit(nogil=True, cache=True)
def _next_uses(ids, bp, st_node, scratch, g0, nxt, nbat, st_first, st_bat):
    """Backward pass: nxt[i] = index of the next access of row ids[i] (-1: none) and
    nbat[i] its batch (B: none); the same for the first access of each carried row.

    scratch[x] holds g0 + the latest access index of x seen; values below g0 are
    stale (earlier superbatches), so the node-sized array is never cleared.
    Returns the index of a row repeated within its batch, or -1.
    """
    B = bp.shape[0] - 1
    tbl = _batch_table(bp)
    dup = -1
    for t in range(B - 1, -1, -1):
        a = bp[t]
        z = bp[t + 1]
        for i in range(a, z):
            if i + _AHEAD < z:
                prefetch(scratch, ids[i + _AHEAD])
            x = ids[i]
            j = scratch[x] - g0
            if j < 0:
                nxt[i] = -1
                nbat[i] = B
            else:
                if j < z:
                    dup = i
                nxt[i] = j
                nbat[i] = _batch_of(j, bp, tbl)
            scratch[x] = g0 + i
    for r in range(st_node.shape[0]):
        j = scratch[st_node[r]] - g0
        st_first[r] = j if j >= 0 else -1
        st_bat[r] = _batch_of(j, bp, tbl) if j >= 0 else B
    return dup


@numba.njit(nogil=True, cache=True)
def _batch_table(bp):
    """tbl[j >> _SHIFT] = the batch holding access (j >> _SHIFT) << _SHIFT."""
    tbl = np.empty((bp[-1] >> _SHIFT) + 1, np.int32)
    b = 0
    for k in range(tbl.shape[0]):
        while bp[b + 1] <= (k << _SHIFT) and b < bp.shape[0] - 2:
            b += 1
        tbl[k] = b
    return tbl


@numba.njit(nogil=True, cache=True, inline="always")
def _batch_of(j, bp, tbl):
    """Batch holding access j: a table lookup, then rarely a step (batches are long)."""
    b = tbl[j >> _SHIFT]
    while bp[b + 1] <= j:
        b += 1
    return b


@numba.njit(nogil=True, cache=True, inline="always")
def _level(rho, cut, e, K):
    for k in range(K):
        if rho >= cut[k, e]:
            return k
    return K


@numba.njit(nogil=True, cache=True)
def _belady(ids, bp, nxt, nbat, st_node, st_level, st_slot, st_first, st_bat, fr_in, fr_ptr,
            cum, size, stop, acc_level, row_loc, mv_node, mv_level, mv_slot, mv_src_level, mv_src,
            mv_ptr, ev_node, ev_level, ev_slot, ev_ptr, out_node, out_level, out_slot, fr_out,
            fr_cnt):
    """Plan batches 0..stop-1. Returns (moves, evictions, rows kept, error: 0 ok,
    1 bad state, 2 not nested, 3 full, 4 free slots do not match the state).

    acc_level[i] / row_loc[i] get the level and slot row i is read from (K: backing).
    Carried rows of one bucket must come deepest level first. fr_in[fr_ptr[k]:fr_ptr[k+1]]
    are level k's free slots, the next one taken last (fr_ptr empty: lowest slot first).
    The state kept (out_*, fr_out / fr_cnt) is the cache before batch `stop`, bucket by
    bucket in insertion order (at stop = B: the rows with no further use).
    """
    K = cum.shape[0]
    B = bp.shape[0] - 1
    A = ids.shape[0]
    R = st_node.shape[0]
    # ---- lay out intervals by bucket (= batch of the next use; B: none) --------------
    base = np.zeros(B + 2, np.int64)
    for i in range(A):
        base[nbat[i] + 1] += 1
    for r in range(R):
        base[st_bat[r] + 1] += 1
    for e in range(B + 1):
        base[e + 1] += base[e]
    ins = np.zeros(B + 1, np.int64)
    cut = np.zeros((K, B + 1), np.int64)
    occ = np.zeros(K, np.int64)
    q_tn = np.empty(A + R, np.int64)        # (access that ends the interval << 32) | node
    q_slot = np.empty(A + R, np.int32)      # slot in its level, once it has one
    # ---- carried rows, free slots per level ------------------------------------------
    fbase = np.zeros(K + 1, np.int64)
    for k in range(K):
        fbase[k + 1] = fbase[k] + size[k]
    used = np.zeros(fbase[K], np.bool_)
    prev = np.full(B + 1, K, np.int64)
    for r in range(R):
        lv = st_level[r]
        e = st_bat[r]
        if lv > prev[e] or lv < 0:
            return 0, 0, 0, 1
        prev[e] = lv
        q = base[e] + ins[e]
        ins[e] += 1
        q_tn[q] = (np.int64(st_first[r]) << 32) | st_node[r]
        q_slot[q] = st_slot[r]
        for k in range(lv):
            cut[k, e] += 1
        for k in range(lv, K):
            occ[k] += 1
        used[fbase[lv] + st_slot[r]] = True
    free = np.empty(fbase[K], np.int32)
    ftop = np.zeros(K, np.int64)
    for k in range(K):
        if fr_ptr.shape[0] == 0:
            for s in range(size[k] - 1, -1, -1):
                if not used[fbase[k] + s]:
                    free[fbase[k] + ftop[k]] = s
                    ftop[k] += 1
            continue
        for j in range(fr_ptr[k], fr_ptr[k + 1]):
            s = fr_in[j]
            if s < 0 or s >= size[k] or used[fbase[k] + s]:
                return 0, 0, 0, 4
            used[fbase[k] + s] = True
            free[fbase[k] + ftop[k]] = s
            ftop[k] += 1
        for s in range(size[k]):
            if not used[fbase[k] + s]:
                return 0, 0, 0, 4
    # ---- per-step scratch ----------------------------------------------------------------
    maxb = 0
    for t in range(B):
        maxb = max(maxb, bp[t + 1] - bp[t])
    newq = np.empty(maxb, np.int64)
    stamp = np.full(B + 1, -1, np.int64)
    opened = np.zeros(B + 1, np.int64)      # rank of the first interval opened in this step
    touched = np.empty(B + 1, np.int64)
    snap = np.empty((K, B + 1), np.int64)
    mv_q = np.empty(mv_node.shape[0], np.int64)
    topk = np.full(K, B, np.int64)
    nm = 0
    ne = 0
    for t in range(stop):
        a = bp[t]
        z = bp[t + 1]
        # (1) intervals ending now: where the batch's rows are read from
        for i in range(a, z):
            acc_level[i] = K
        for rho in range(cut[K - 1, t], ins[t]):
            q = base[t] + rho
            lv = _level(rho, cut, t, K)
            i = q_tn[q] >> 32
            acc_level[i] = lv
            row_loc[i] = q_slot[q]
            for k in range(lv, K):
                occ[k] -= 1
        for k in range(K):
            cut[k, t] = ins[t]
        # (2) every access opens an interval to its next use
        emax = t + 1
        for e in range(t + 1, B + 1):
            opened[e] = ins[e]
        for i in range(a, z):
            e = nbat[i]
            q = base[e] + ins[e]
            ins[e] += 1
            q_tn[q] = (np.int64(nxt[i]) << 32) | ids[i]
            newq[i - a] = q
            emax = max(emax, e)
        # (3) each level evicts the farthest next use, oldest first
        nt = 0
        for k in range(K):
            occ[k] += z - a
            topk[k] = max(topk[k], emax)
            while occ[k] > cum[k]:
                e = topk[k]
                while ins[e] == cut[k, e]:
                    e -= 1
                topk[k] = e
                if stamp[e] != t:
                    stamp[e] = t
                    touched[nt] = e
                    for kk in range(K):
                        snap[kk, nt] = cut[kk, e]
                    nt += 1
                amt = min(occ[k] - cum[k], ins[e] - cut[k, e])
                cut[k, e] += amt
                occ[k] -= amt
        # (4a) rows not read by this batch whose level changed: demote or evict
        nm0 = nm
        for w in range(nt):
            e = touched[w]
            for k in range(K - 1):
                if cut[k, e] < cut[k + 1, e]:
                    return 0, 0, 0, 2
            for rho in range(snap[K - 1, w], min(cut[0, e], opened[e])):
                q = base[e] + rho                # (intervals opened by this batch: see 4b)
                s = q_slot[q]
                lo_old = K
                for k in range(K):
                    if rho >= snap[k, w]:
                        lo_old = k
                        break
                lo_new = _level(rho, cut, e, K)
                if lo_new == lo_old:
                    continue
                free[fbase[lo_old] + ftop[lo_old]] = s
                ftop[lo_old] += 1
                if lo_new < K:
                    mv_node[nm] = q_tn[q] & _LOW32
                    mv_level[nm] = lo_new
                    mv_src_level[nm] = lo_old
                    mv_src[nm] = s
                    mv_q[nm] = q
                    nm += 1
                else:
                    ev_node[ne] = q_tn[q] & _LOW32
                    ev_level[ne] = lo_old
                    ev_slot[ne] = s
                    ne += 1
        # (4b) the batch's rows: keep their slot, move, admit or leave
        for i in range(a, z):
            q = newq[i - a]
            e = nbat[i]
            l_new = _level(q - base[e], cut, e, K)
            l_old = acc_level[i]
            if l_new == l_old:
                if l_new < K:
                    q_slot[q] = row_loc[i]
                continue
            if l_old < K:
                free[fbase[l_old] + ftop[l_old]] = row_loc[i]
                ftop[l_old] += 1
                if l_new == K:
                    ev_node[ne] = ids[i]
                    ev_level[ne] = l_old
                    ev_slot[ne] = row_loc[i]
                    ne += 1
            if l_new < K:
                mv_node[nm] = ids[i]
                mv_level[nm] = l_new
                mv_src_level[nm] = -1
                mv_src[nm] = i - a
                mv_q[nm] = q
                nm += 1
        # (4c) give every arriving row a slot freed in its level
        for m in range(nm0, nm):
            lv = mv_level[m]
            if ftop[lv] == 0:
                return 0, 0, 0, 3
            ftop[lv] -= 1
            s = free[fbase[lv] + ftop[lv]]
            mv_slot[m] = s
            q_slot[mv_q[m]] = s
        mv_ptr[t + 1] = nm
        ev_ptr[t + 1] = ne
    # ---- what stays, bucket by bucket, oldest first (at the end: bucket B only) ---------------
    n_out = 0
    for e in range(stop, B + 1):
        for rho in range(cut[K - 1, e], ins[e]):
            q = base[e] + rho
            out_node[n_out] = q_tn[q] & _LOW32
            out_level[n_out] = _level(rho, cut, e, K)
            out_slot[n_out] = q_slot[q]
            n_out += 1
    for k in range(K):
        fr_cnt[k] = ftop[k]
        for j in range(ftop[k]):
            fr_out[fbase[k] + j] = free[fbase[k] + j]
    return nm, ne, n_out, 0


@numba.njit(nogil=True, cache=True)
def _buckets_deepest_first(st_bat, st_level, B):
    """Whether, within every bucket, the carried rows come deepest level first (as the kernel
    inserts them); a state restored into a different window may need reordering."""
    prev = np.full(B + 1, 127, np.int64)
    for r in range(st_bat.shape[0]):
        if st_level[r] > prev[st_bat[r]]:
            return False
        prev[st_bat[r]] = st_level[r]
    return True


class BeladyPolicy(CachePolicy):
    """Belady's MIN over each superbatch, for a cache of one or more levels.

    `capacities[k]` is the number of slots of level k (level 0: DRAM). Loads from
    the backing tier equal Belady's minimum for a cache of sum(capacities) rows;
    reads from outside level 0 equal the minimum for capacities[0] rows.
    Its state is the cached rows in priority order and each level's free-slot order.
    """

    name = "belady"
    needs_future = True
    max_levels = None

    def __init__(self, capacities, num_nodes: int):
        super().__init__(capacities, num_nodes)
        self._scratch = np.full(self.num_nodes, -1, np.int32)
        self._g0 = 0                      # tag of this superbatch's accesses in _scratch
        self._state = CacheState.empty()
        self._free: tuple[np.ndarray, np.ndarray] | None = None
        self._free_for: CacheState | None = None     # the _state the free lists go with

    def state(self) -> PolicyState:
        free = self._free if self._free_for is self._state else None
        return self._make_state(self._state, free=None if free is None else free[0],
                                free_ptr=None if free is None else free[1])

    def _blank(self) -> "BeladyPolicy":
        return BeladyPolicy(self.capacities, self.num_nodes)

    def _restore(self, state: PolicyState) -> None:
        c = state.cache
        self._state = CacheState(c.node.copy(), c.level.copy(), c.slot.copy())
        self._free = None if state.free is None else (state.free.copy(), state.free_ptr.copy())
        self._free_for = self._state

    @property
    def nbytes(self) -> int:
        st = self._state
        free = sum(a.nbytes for a in self._free) if self._free is not None else 0
        return self._scratch.nbytes + st.node.nbytes + st.level.nbytes + st.slot.nbytes + free

    def _advance(self, trace: AccessTrace, batch: int) -> PolicyState:
        """Plan the whole superbatch (the future decides) but keep the state before `batch`."""
        self._run(trace.ids, trace.ptr, batch)
        return self.state()

    def _plan(self, ids: np.ndarray, bp: np.ndarray) -> Plan:
        return self._run(ids, bp, len(bp) - 1)

    def _run(self, ids: np.ndarray, bp: np.ndarray, stop: int) -> Plan | None:
        """Plan batches 0..stop-1, keep the state before batch `stop`; the plan when stop = B."""
        A, B = len(ids), len(bp) - 1
        st = self._state
        R = len(st)
        if self._g0 + A >= 2**31 - 1:
            self._scratch.fill(-1)
            self._g0 = 0
        nxt = np.empty(A, np.int32)
        nbat = np.empty(A, np.int32)
        st_first = np.empty(R, np.int32)
        st_bat = np.empty(R, np.int32)
        dup = _next_uses(ids, bp, st.node, self._scratch, self._g0, nxt, nbat, st_first, st_bat)
        self._g0 += A
        if dup >= 0:
            b = int(np.searchsorted(bp, dup, side="right") - 1)
            raise ValueError(f"batch {b} of the trace repeats node {ids[dup]}; rows of a batch "
                             f"must be distinct")
        carried = st
        if not _buckets_deepest_first(st_bat, st.level, B):
            order = np.lexsort((-st.level.astype(np.int64), st_bat))
            carried = CacheState(st.node[order], st.level[order], st.slot[order])
            st_first, st_bat = st_first[order], st_bat[order]
        cap = self.capacities
        K = len(cap)
        free = self._free if self._free_for is st else None
        fr_in, fr_ptr = free if free is not None else (np.empty(0, np.int32), np.empty(0, np.int64))
        n_moves = A + (A + R) * (K - 1)
        moves = (np.zeros(B + 1, np.int64), np.empty(n_moves, np.int32), np.empty(n_moves, np.int8),
                 np.empty(n_moves, np.int32), np.empty(n_moves, np.int8),
                 np.empty(n_moves, np.int32))
        evictions = (np.zeros(B + 1, np.int64), np.empty(A + R, np.int32),
                     np.empty(A + R, np.int8), np.empty(A + R, np.int32))
        acc_level = np.empty(A, np.int8)
        row_loc = np.empty(A, np.int32)
        out = CacheState(np.empty(A + R, np.int32), np.empty(A + R, np.int8),
                         np.empty(A + R, np.int32))
        fr_out = np.empty(int(sum(cap)), np.int32)
        fr_cnt = np.empty(K, np.int64)
        nm, ne, n_out, err = _belady(
            ids, bp, nxt, nbat, carried.node, carried.level, carried.slot, st_first, st_bat,
            fr_in, fr_ptr, np.cumsum(cap).astype(np.int64), np.asarray(cap, np.int64), stop,
            acc_level, row_loc, *moves[1:], moves[0], *evictions[1:], evictions[0], out.node,
            out.level, out.slot, fr_out, fr_cnt)
        if err:
            raise RuntimeError({1: "carried cache state is not in Belady's order",
                                2: "cache levels lost their nesting (inclusion)",
                                3: "a level ran out of slots",
                                4: "the state's free slots are not the slots it leaves empty"}[err])
        moves = (moves[0],) + tuple(a[:nm].copy() for a in moves[1:])
        evictions = (evictions[0],) + tuple(a[:ne].copy() for a in evictions[1:])
        self._state = CacheState(out.node[:n_out].copy(), out.level[:n_out].copy(),
                                 out.slot[:n_out].copy())
        starts = np.concatenate([[0], np.cumsum(cap)[:-1]]).astype(np.int64)
        fr_ptr_out = np.zeros(K + 1, np.int64)
        np.cumsum(fr_cnt, out=fr_ptr_out[1:])
        self._free = (np.concatenate([fr_out[s:s + c] for s, c in zip(starts, fr_cnt)]),
                      fr_ptr_out)
        self._free_for = self._state
        if stop < B:
            return None
        return finish(self.name, cap, ids, bp, self.num_nodes, acc_level, row_loc, moves,
                      evictions, st, self._state)
