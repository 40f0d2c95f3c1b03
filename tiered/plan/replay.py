"""Replay a plan against simulated caches whose slots hold row ids instead of row bytes.

If the plan is sound, every batch assembles exactly its rows (`row_ids`), every
cache-level load, move source and eviction finds the row the plan names, and
the caches end as `state_out` says. The executor's contract, checked end to end.
"""
from __future__ import annotations

import numba
import numpy as np

from .plan import Plan

_PROBLEMS = {1: "a load from a cache level found another row",
             2: "an assembled row differs from the batch's row",
             3: "an evicted slot holds another row",
             4: "a move's source holds another row",
             5: "the caches do not end as state_out says",
             6: "a slot or load index is out of range"}


@numba.njit(nogil=True, cache=True)
def _replay(cap, bp, row_ids, row_loc, lp, load_ids, load_level, load_slot, mp, move_ids,
            move_level, move_slot, move_src_level, move_src, ep, evict_ids, evict_level,
            evict_slot, in_node, in_level, in_slot, out_node, out_level, out_slot):
    K = cap.shape[0]
    base = np.zeros(K + 1, np.int64)
    for k in range(K):
        base[k + 1] = base[k] + cap[k]
    slab = np.full(base[K], -1, np.int64)
    for r in range(in_node.shape[0]):
        slab[base[in_level[r]] + in_slot[r]] = in_node[r]
    for b in range(bp.shape[0] - 1):
        nl = lp[b + 1] - lp[b]
        loaded = np.empty(nl, np.int64)
        for j in range(nl):
            o = lp[b] + j
            lv = load_level[o]
            if lv < K:
                if load_slot[o] < 0 or load_slot[o] >= cap[lv]:
                    return 6, b
                loaded[j] = slab[base[lv] + load_slot[o]]
                if loaded[j] != load_ids[o]:
                    return 1, b
            else:
                loaded[j] = load_ids[o]
        a = bp[b]
        n = bp[b + 1] - a
        rows = np.empty(n, np.int64)
        for i in range(n):
            r = row_loc[a + i]
            if r >= 0:
                if r >= cap[0]:
                    return 6, b
                rows[i] = slab[r]
            else:
                if -r - 1 >= nl:
                    return 6, b
                rows[i] = loaded[-r - 1]
            if rows[i] != row_ids[a + i]:
                return 2, b
        for o in range(ep[b], ep[b + 1]):
            if slab[base[evict_level[o]] + evict_slot[o]] != evict_ids[o]:
                return 3, b
        nm = mp[b + 1] - mp[b]
        src = np.empty(nm, np.int64)
        for j in range(nm):
            o = mp[b] + j
            sl = move_src_level[o]
            src[j] = rows[move_src[o]] if sl < 0 else slab[base[sl] + move_src[o]]
            if src[j] != move_ids[o]:
                return 4, b
        for j in range(nm):
            o = mp[b] + j
            slab[base[move_level[o]] + move_slot[o]] = src[j]
        for o in range(ep[b], ep[b + 1]):
            s = base[evict_level[o]] + evict_slot[o]
            if slab[s] == evict_ids[o]:
                slab[s] = -1
    expect = np.full(base[K], -1, np.int64)
    for r in range(out_node.shape[0]):
        expect[base[out_level[r]] + out_slot[r]] = out_node[r]
    for s in range(base[K]):
        if slab[s] != expect[s]:
            return 5, bp.shape[0] - 2
    return 0, -1


def replay(plan: Plan) -> None:
    """Raise ValueError naming the first batch where the plan does not deliver its rows."""
    p = plan
    err, b = _replay(p.capacities, p.batch_ptr, p.row_ids, p.row_loc, p.load_ptr, p.load_ids,
                     p.load_level, p.load_slot, p.move_ptr, p.move_ids, p.move_level,
                     p.move_slot, p.move_src_level, p.move_src, p.evict_ptr, p.evict_ids,
                     p.evict_level, p.evict_slot, p.state_in.node, p.state_in.level,
                     p.state_in.slot, p.state_out.node, p.state_out.level, p.state_out.slot)
    if err:
        raise ValueError(f"{p.policy} plan, batch {b}: {_PROBLEMS[err]}")
