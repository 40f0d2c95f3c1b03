"""An access trace: the rows each mini-batch of a superbatch touches, in int32 ids + offsets."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AccessTrace:
    """Batch b touches ids[ptr[b]:ptr[b+1]] (distinct within a batch, in the batch's row order).

    The sampler's superbatch is already one: `AccessTrace.of(superbatch)` shares its arrays.
    """

    ids: np.ndarray          # int32 (A,)
    ptr: np.ndarray          # int64 (B+1,)
    num_nodes: int

    def __post_init__(self):
        if self.ids.dtype != np.int32 or self.ids.ndim != 1:
            raise ValueError(f"trace ids must be a 1-D int32 array, got {self.ids.dtype} "
                             f"{self.ids.shape}")
        if self.ptr.dtype != np.int64 or self.ptr[0] != 0 or self.ptr[-1] != len(self.ids):
            raise ValueError(f"trace ptr must be int64 from 0 to len(ids) = {len(self.ids)}, "
                             f"got {self.ptr.dtype} [{self.ptr[0]} .. {self.ptr[-1]}]")
        if len(self.ids) >= 2**31 - 1:
            raise ValueError(f"a superbatch holds at most 2^31 - 2 accesses, this one has "
                             f"{len(self.ids)}; use fewer batches per superbatch")

    @classmethod
    def of(cls, superbatch, num_nodes: int) -> "AccessTrace":
        """The trace of a SampledSuperbatch: every batch's input-layer nodes (n_id)."""
        return cls(superbatch.node_ids, superbatch.node_ptr, int(num_nodes))

    @classmethod
    def from_batches(cls, batches, num_nodes: int) -> "AccessTrace":
        """From a list of id arrays (one per batch)."""
        ids = [np.asarray(b, dtype=np.int32).ravel() for b in batches]
        ptr = np.zeros(len(ids) + 1, np.int64)
        np.cumsum([len(b) for b in ids], out=ptr[1:])
        return cls(np.concatenate(ids) if ids else np.empty(0, np.int32), ptr, int(num_nodes))

    @property
    def num_batches(self) -> int:
        return len(self.ptr) - 1

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, b: int) -> np.ndarray:
        return self.ids[self.ptr[b]:self.ptr[b + 1]]

    def head(self, b: int) -> "AccessTrace":
        """Batches 0..b-1 (views)."""
        return AccessTrace(self.ids[:self.ptr[b]], self.ptr[:b + 1], self.num_nodes)

    def tail(self, b: int) -> "AccessTrace":
        """Batches b..B-1 (the rest of a superbatch, as a resumed run plans it)."""
        return AccessTrace(self.ids[self.ptr[b]:], self.ptr[b:] - self.ptr[b], self.num_nodes)


def access_counts(trace: AccessTrace) -> np.ndarray:
    """How often each node is accessed in the trace (the 'sampled frequency' static score)."""
    return np.bincount(trace.ids, minlength=trace.num_nodes)
