"""The CachePolicy seam: turn a superbatch's access trace into a Plan, carrying cache state.

A policy's whole state between two batches is a `PolicyState`: the cached rows in
the policy's own order plus what else its next decision depends on (SIEVE's
visited bits and hand, Belady's free-slot order). `state()` / `restore()` save and
reload it, so a checkpoint resumes planning exactly where it stopped, and
`state_at` gives the state in the middle of a superbatch already planned (where a
training run stands while the inspector runs ahead).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from .plan import CacheState, Plan
from .trace import AccessTrace


@dataclass
class PolicyState:
    """Everything a policy's next plan depends on (see each policy for its order).

    `cache` lists the cached rows oldest first in the policy's order (Belady:
    by next-use bucket, then insertion; LRU: least recently used first; SIEVE:
    FIFO order; static: by slot). `visited`/`hand`: SIEVE's bits (one per cached
    row) and the index in `cache` its hand points at (-1: the tail). `free` /
    `free_ptr`: per level, the free slots in the order they will be taken
    (Belady); None lets the policy derive them from `cache`.
    """

    policy: str
    capacities: tuple[int, ...]
    num_nodes: int
    cache: CacheState
    visited: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    hand: int = -1
    free: np.ndarray | None = None          # int32, levels concatenated
    free_ptr: np.ndarray | None = None      # int64 (K+1,)

    def to_dict(self) -> dict:
        """Plain numpy arrays and numbers (for torch.save, np.savez or pickle)."""
        d = {"policy": self.policy, "capacities": np.asarray(self.capacities, np.int64),
             "num_nodes": self.num_nodes, "node": self.cache.node, "level": self.cache.level,
             "slot": self.cache.slot, "visited": self.visited, "hand": self.hand}
        if self.free is not None:
            d.update(free=self.free, free_ptr=self.free_ptr)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyState":
        return cls(str(d["policy"]), tuple(int(c) for c in np.asarray(d["capacities"])),
                   int(d["num_nodes"]),
                   CacheState(np.asarray(d["node"], np.int32), np.asarray(d["level"], np.int8),
                              np.asarray(d["slot"], np.int32)),
                   np.asarray(d["visited"], np.uint8), int(d["hand"]),
                   None if d.get("free") is None else np.asarray(d["free"], np.int32),
                   None if d.get("free_ptr") is None else np.asarray(d["free_ptr"], np.int64))


class CachePolicy(abc.ABC):
    """A cache of `capacities[k]` row slots at each level k (level 0 = DRAM) over a backing tier.

    `plan(trace)` consumes one superbatch and returns its Plan; the cache contents
    at the end carry over to the next call. Policies that do not look ahead
    (`needs_future = False`) give the same plans for any superbatch size.
    One thread at a time may call `plan`.
    """

    name: str = ""
    needs_future: bool = False
    max_levels: int | None = 1

    def __init__(self, capacities, num_nodes: int):
        caps = (int(capacities),) if np.isscalar(capacities) else tuple(int(c) for c in capacities)
        if not caps or any(c < 0 for c in caps):
            raise ValueError(f"{self.name}: capacities must be >= 0 slots per level, got {caps}")
        if self.max_levels is not None and len(caps) > self.max_levels:
            raise ValueError(f"{self.name} manages {self.max_levels} cache level(s), "
                             f"got capacities {caps}")
        self.capacities = caps
        self.num_nodes = int(num_nodes)

    def plan(self, trace: AccessTrace) -> Plan:
        """The plan of one superbatch (batches' rows must be distinct within a batch)."""
        self._check_trace(trace)
        return self._plan(trace.ids, trace.ptr)

    def _check_trace(self, trace: AccessTrace) -> None:
        if trace.num_nodes != self.num_nodes:
            raise ValueError(f"{self.name}: trace over {trace.num_nodes} nodes, policy built "
                             f"for {self.num_nodes}")
        if len(trace.ids) and (trace.ids.min() < 0 or trace.ids.max() >= self.num_nodes):
            bad = trace.ids.min() if trace.ids.min() < 0 else trace.ids.max()
            raise IndexError(f"{self.name}: trace row {bad} out of range [0, {self.num_nodes})")

    @abc.abstractmethod
    def _plan(self, ids: np.ndarray, bp: np.ndarray) -> Plan:
        """Plan for checked int32 ids and int64 batch offsets."""

    # ---- state ---------------------------------------------------------------------------
    @abc.abstractmethod
    def state(self) -> PolicyState:
        """The policy's state now: what the next plan starts from."""

    def restore(self, state: PolicyState) -> None:
        """Continue from `state` (from `state()` or `state_at` of a policy built alike)."""
        if (state.policy, tuple(state.capacities), state.num_nodes) != \
                (self.name, self.capacities, self.num_nodes):
            raise ValueError(f"state of a {state.policy} cache {tuple(state.capacities)} over "
                             f"{state.num_nodes} nodes cannot restore a {self.name} cache "
                             f"{self.capacities} over {self.num_nodes} nodes")
        c = state.cache
        if len(c.node) and (c.node.min() < 0 or c.node.max() >= self.num_nodes):
            raise ValueError(f"{self.name}: state holds a node outside [0, {self.num_nodes})")
        if len(c.level) and (c.level.min() < 0 or c.level.max() >= len(self.capacities)):
            raise ValueError(f"{self.name}: state holds a level outside "
                             f"[0, {len(self.capacities)})")
        caps = np.asarray(self.capacities, np.int64)
        if len(c.slot) and np.any((c.slot < 0) | (c.slot >= caps[c.level])):
            raise ValueError(f"{self.name}: state holds a slot beyond its level's capacity")
        key = c.level.astype(np.int64) << 32 | c.slot
        if len(np.unique(key)) != len(key) or len(np.unique(c.node)) != len(c.node):
            raise ValueError(f"{self.name}: state repeats a slot or a node")
        self._restore(state)

    @abc.abstractmethod
    def _restore(self, state: PolicyState) -> None:
        """Load a checked state (nodes, levels and slots in range, none repeated)."""

    def state_at(self, start: PolicyState, trace: AccessTrace, batch: int) -> PolicyState:
        """The state before batch `batch` of a superbatch whose plan started from `start`.

        What a checkpoint taken mid-superbatch saves: restoring it and planning the
        rest of the superbatch (`trace` from `batch` on) gives the same plan, batch
        for batch, as the uninterrupted run. Works on a fresh policy built alike, so
        it never reads this one's state: safe while another thread plans with it.
        """
        if not 0 <= batch <= trace.num_batches:
            raise ValueError(f"batch {batch} outside [0, {trace.num_batches}]")
        self._check_trace(trace)
        tmp = self._blank()
        tmp.restore(start)
        return tmp._advance(trace, batch)

    @abc.abstractmethod
    def _blank(self) -> "CachePolicy":
        """A policy with this one's configuration and an empty cache."""

    def _advance(self, trace: AccessTrace, batch: int) -> PolicyState:
        """Plan the first `batch` batches of `trace` and return the state (online policies)."""
        self.plan(trace.head(batch))
        return self.state()

    def _make_state(self, cache: CacheState, **kw) -> PolicyState:
        return PolicyState(self.name, self.capacities, self.num_nodes, cache, **kw)

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """DRAM the policy holds between superbatches (maps and queues, not the cached rows)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacities={self.capacities}, num_nodes={self.num_nodes})"
