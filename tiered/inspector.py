"""The inspector: sample a superbatch of mini-batches ahead, record what each touches, plan the cache.

Ginex's split: because the inspector knows every batch of the superbatch before
the executor runs it, Belady's rule is available, and the plan says exactly
which feature rows each batch loads, from which tier, and where they go. The
access record is the superbatch's own node arrays (int32 ids + int64 offsets),
kept in memory; the cache state carries over from one superbatch to the next
inside the policy.

Everything here is a plain iterator: run it in a background thread to sample
superbatch k+1 while the executor consumes k (the kernels release the GIL; the
numba threading layer must be omp or tbb, which it is wherever libgomp exists).
One iterator per Inspector at a time.

Resuming at batch k of an epoch (`first_batch=k`) samples nothing before k: the
first superbatch is the rest of the one holding k, so every later superbatch is
cut where an uninterrupted run cuts it, and with the policy restored to
`Superbatch.state_at(k)` of that run every plan is the same from batch k on.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from .plan import AccessTrace, CachePolicy, Plan, PolicyState
from .sampling import NeighborSampler, SampledSuperbatch


@dataclass(frozen=True)
class PlanStart:
    """What re-planning a superbatch from any of its batches needs: where it starts in the
    epoch, the policy's state before it, and its accesses (the n_id arrays only; the blocks
    and the plan can be freed). A checkpoint takes the policy state from it."""

    first_batch: int
    policy_state: PolicyState
    trace: AccessTrace

    def __len__(self) -> int:
        return len(self.trace.ptr) - 1

    def state_at(self, policy: CachePolicy, batch: int) -> PolicyState:
        """`policy`'s state before batch `batch` of the epoch (first_batch <= batch <=
        first_batch + len(self)): what a checkpoint taken there saves, and what
        `inspect(..., first_batch=batch)` must start from to plan as this run did."""
        return policy.state_at(self.policy_state, self.trace, batch - self.first_batch)


@dataclass
class Superbatch:
    """Superbatch `index` of `epoch`: its sampled batches and the plan that feeds them.

    Its batches are batches first_batch.. of the epoch; `policy_state` is the
    policy's state before planning it (what `state_at` starts from).
    """

    epoch: int
    index: int
    batches: SampledSuperbatch
    plan: Plan
    sample_seconds: float
    plan_seconds: float
    first_batch: int
    policy_state: PolicyState

    def __len__(self) -> int:
        return len(self.batches)

    def start(self) -> PlanStart:
        """This superbatch's PlanStart (it shares the n_id arrays, copies nothing)."""
        num_nodes = self.policy_state.num_nodes
        return PlanStart(self.first_batch, self.policy_state, AccessTrace.of(self.batches, num_nodes))

    def state_at(self, policy: CachePolicy, batch: int) -> PolicyState:
        """See PlanStart.state_at."""
        return self.start().state_at(policy, batch)


def batch_key(epoch: int, batch: int) -> int:
    """The random-stream key of batch `batch` of `epoch` (unique across epochs)."""
    return (int(epoch) << 32) + int(batch)


def inspect(sampler: NeighborSampler, policy: CachePolicy, batches: Iterable,
            superbatch_size: int, epoch: int = 0, edges: bool = False, num_neg: int = 1,
            neg_range: tuple[int, int] | None = None, first_batch: int = 0) -> Iterator[Superbatch]:
    """Sample and plan `batches` (seed arrays, or (P, 2) edge arrays when `edges`) in groups
    of `superbatch_size`; batch i of the sequence uses key batch_key(epoch, i).

    `first_batch=k` starts at batch k of the sequence without sampling the batches
    before it (they are skipped, not sampled). Superbatches stay cut at multiples of
    `superbatch_size` (the first one holds batches k .. the next multiple) and keep
    the index an uninterrupted run gives them. The policy plans from its current
    state: restore it first (see `Superbatch.state_at`).
    """
    if superbatch_size < 1:
        raise ValueError(f"superbatch_size must be >= 1, got {superbatch_size}")
    if first_batch < 0:
        raise ValueError(f"first_batch must be >= 0, got {first_batch}")
    it = itertools.islice(iter(batches), first_batch, None)
    first = first_batch
    while True:
        size = superbatch_size - first % superbatch_size
        group = list(itertools.islice(it, size))
        if not group:
            return
        keys = [batch_key(epoch, first + i) for i in range(len(group))]
        t0 = time.perf_counter()
        if edges:
            sb = sampler.sample_edges(group, keys, num_neg=num_neg, neg_range=neg_range)
        else:
            sb = sampler.sample(group, keys)
        t1 = time.perf_counter()
        start = policy.state()
        plan = policy.plan(AccessTrace.of(sb, sampler.num_nodes))
        t2 = time.perf_counter()
        yield Superbatch(epoch, first // superbatch_size, sb, plan, t1 - t0, t2 - t1, first, start)
        first += len(group)


class Inspector:
    """Epochs of superbatches: shuffled seeds (or seed edges) cut into batches, sampled, planned."""

    def __init__(self, sampler: NeighborSampler, policy: CachePolicy, batch_size: int,
                 superbatch_size: int = 64, seed: int = 0, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if policy.num_nodes != sampler.num_nodes:
            raise ValueError(f"policy built for {policy.num_nodes} nodes, graph has "
                             f"{sampler.num_nodes}")
        self.sampler = sampler
        self.policy = policy
        self.batch_size = int(batch_size)
        self.superbatch_size = int(superbatch_size)
        self.seed = int(seed)
        self.drop_last = drop_last

    def _split(self, items: np.ndarray, epoch: int, shuffle: bool) -> list[np.ndarray]:
        if shuffle:
            items = items[np.random.default_rng([self.seed, epoch]).permutation(len(items))]
        n = len(items)
        stop = n - n % self.batch_size if self.drop_last else n
        return [items[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def num_batches(self, num_items: int) -> int:
        full, rest = divmod(num_items, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def node_epoch(self, seeds: np.ndarray, epoch: int, shuffle: bool = True,
                   first_batch: int = 0) -> Iterator[Superbatch]:
        """Node classification: batches of `batch_size` seed nodes (shuffled per epoch),
        from batch `first_batch` on (resuming: restore the policy first)."""
        seeds = np.asarray(seeds, dtype=np.int64)
        return inspect(self.sampler, self.policy, self._split(seeds, epoch, shuffle),
                       self.superbatch_size, epoch, first_batch=first_batch)

    def edge_epoch(self, edges: np.ndarray, epoch: int, num_neg: int = 1,
                   neg_range: tuple[int, int] | None = None, shuffle: bool = True,
                   first_batch: int = 0) -> Iterator[Superbatch]:
        """Link prediction: batches of `batch_size` (src, dst) edges plus num_neg negatives
        each, from batch `first_batch` on."""
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        return inspect(self.sampler, self.policy, self._split(edges, epoch, shuffle),
                       self.superbatch_size, epoch, edges=True, num_neg=num_neg,
                       neg_range=neg_range, first_batch=first_batch)
