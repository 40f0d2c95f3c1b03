"""The CachePolicy seam: turn a superbatch's access trace into a Plan, carrying cache state."""
from __future__ import annotations

import abc

import numpy as np

from .plan import CacheState, Plan
from .trace import AccessTrace


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
        if trace.num_nodes != self.num_nodes:
            raise ValueError(f"{self.name}: trace over {trace.num_nodes} nodes, policy built "
                             f"for {self.num_nodes}")
        if len(trace.ids) and (trace.ids.min() < 0 or trace.ids.max() >= self.num_nodes):
            bad = trace.ids.min() if trace.ids.min() < 0 else trace.ids.max()
            raise IndexError(f"{self.name}: trace row {bad} out of range [0, {self.num_nodes})")
        return self._plan(trace.ids, trace.ptr)

    @abc.abstractmethod
    def _plan(self, ids: np.ndarray, bp: np.ndarray) -> Plan:
        """Plan for checked int32 ids and int64 batch offsets."""

    @property
    @abc.abstractmethod
    def state(self) -> CacheState:
        """The cache contents now (what the next plan starts from)."""

    @property
    @abc.abstractmethod
    def nbytes(self) -> int:
        """DRAM the policy holds between superbatches (maps and queues, not the cached rows)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacities={self.capacities}, num_nodes={self.num_nodes})"
