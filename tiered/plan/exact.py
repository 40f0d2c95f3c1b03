"""Exact minimum-cost caching for tiny traces, by exhaustive search (to verify the planners).

Exponential in the number of distinct rows: meant for traces of a handful of
nodes, as in the tests and the benchmark's multi-tier gap measurement.
"""
from __future__ import annotations

import itertools

import numpy as np

from .plan import Plan
from .trace import AccessTrace


def exact_misses(trace: AccessTrace, capacity: int) -> int:
    """Fewest rows any cache of `capacity` rows must load (batch semantics, bypass allowed),
    trying every choice of rows to keep after every batch."""
    states = {frozenset(): 0}
    for b in range(trace.num_batches):
        R = set(trace.batch(b).tolist())
        nxt: dict = {}
        for S, cost in states.items():
            c = cost + len(R - S)
            pool = sorted(S | R)
            for keep in itertools.combinations(pool, min(capacity, len(pool))):
                k = frozenset(keep)
                if c < nxt.get(k, 1 << 60):
                    nxt[k] = c
        states = nxt
    return min(states.values())


def exact_two_level_cost(trace: AccessTrace, c0: int, c1: int, p: float, s: float,
                         w: float) -> float:
    """Least cost of serving the trace from a DRAM cache of c0 rows and a PMem cache of c1 rows
    over a backing tier, over every sequence of (DRAM set, PMem set).

    A batch row costs 0 from DRAM, p from PMem, s from the backing tier; a row
    written into PMem costs w; a row moved into DRAM without being read by the
    batch costs a PMem read (p).
    """
    states = {(frozenset(), frozenset()): 0.0}
    for b in range(trace.num_batches):
        R = set(trace.batch(b).tolist())
        nxt: dict = {}
        for (D, P), cost in states.items():
            read = cost + sum(0.0 if x in D else p if x in P else s for x in R)
            pool = sorted(D | P | R)
            for kd in range(min(c0, len(pool)) + 1):
                for D2 in itertools.combinations(pool, kd):
                    D2s = frozenset(D2)
                    promote = p * sum(1 for x in D2s - D if x not in R)
                    rest = [x for x in pool if x not in D2s]
                    for kp in range(min(c1, len(rest)) + 1):
                        for P2 in itertools.combinations(rest, kp):
                            P2s = frozenset(P2)
                            c = read + promote + w * len(P2s - P)
                            if c < nxt.get((D2s, P2s), float("inf")):
                                nxt[(D2s, P2s)] = c
        states = nxt
    return min(states.values())


def two_level_cost(plan: Plan, p: float, s: float, w: float) -> float:
    """The same cost for a two-level plan: its PMem and backing reads, and rows moved into PMem."""
    if plan.num_levels != 2:
        raise ValueError(f"two_level_cost needs a plan of 2 cache levels, got {plan.num_levels}")
    reads = p * np.count_nonzero(plan.load_level == 1) + s * np.count_nonzero(plan.load_level == 2)
    promoted = np.count_nonzero((plan.move_level == 0) & (plan.move_src_level == 1))
    return float(reads + p * promoted + w * np.count_nonzero(plan.move_level == 1))
