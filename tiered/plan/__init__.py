"""Cache plans: access traces, the Plan format, Belady (multi-level) and online policies."""
from __future__ import annotations

import numpy as np

from .belady import BeladyPolicy
from .online import LRUPolicy, NoCache, SievePolicy, StaticPolicy
from .plan import BatchPlan, CacheState, Plan
from .policy import CachePolicy, PolicyState
from .replay import replay
from .trace import AccessTrace, access_counts

POLICIES = ("belady", "lru", "sieve", "static", "none")


def make_policy(name: str, capacities, num_nodes: int,
                score: np.ndarray | None = None) -> CachePolicy:
    """A policy by name. `static` needs `score` (e.g. in-degree or sampled access counts)."""
    if name == "belady":
        return BeladyPolicy(capacities, num_nodes)
    if name == "lru":
        return LRUPolicy(capacities, num_nodes)
    if name == "sieve":
        return SievePolicy(capacities, num_nodes)
    if name == "static":
        if score is None:
            raise ValueError("the static policy needs a score per node (in-degree or access counts)")
        return StaticPolicy(capacities, num_nodes, score)
    if name == "none":
        return NoCache(num_nodes)
    raise ValueError(f"unknown cache policy {name!r}; choose one of {POLICIES}")


__all__ = ["AccessTrace", "access_counts", "Plan", "BatchPlan", "CacheState", "CachePolicy",
           "PolicyState",
           "BeladyPolicy", "LRUPolicy", "SievePolicy", "StaticPolicy", "NoCache", "make_policy",
           "replay", "POLICIES"]
