"""The inspector: superbatches chain their cache state, plans replay, runs are reproducible,
it can run in a background thread, and a run resumed at any batch plans as the whole run did."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from tiered.gather import gather_rows
from tiered.inspector import Inspector, batch_key
from tiered.plan import BeladyPolicy, LRUPolicy, Plan, PolicyState, make_policy, replay
from tiered.sampling import NeighborSampler

from test_plan import assert_same_batches, assert_same_state
from test_sampler import INDICES, INDPTR, N


def make(policy=None, **kw):
    sampler = NeighborSampler(INDPTR, INDICES, [5, 3], seed=4)
    policy = policy or BeladyPolicy([N // 10], N)
    return Inspector(sampler, policy, batch_size=64, superbatch_size=5, seed=1, **kw)


def test_epoch_covers_seeds_and_chains_state():
    train = np.arange(0, N, 3)
    insp = make()
    sbs = list(insp.node_epoch(train, epoch=0))
    assert sum(len(s) for s in sbs) == insp.num_batches(len(train))
    seen = np.concatenate([b.n_id[:b.num_seeds] for s in sbs for b in s.batches])
    assert np.array_equal(np.sort(seen), train)
    for prev, cur in zip(sbs, sbs[1:]):
        assert np.array_equal(cur.plan.state_in.node, prev.plan.state_out.node)
        assert cur.plan.state_in.slot.tolist() == prev.plan.state_out.slot.tolist()
    for s in sbs:
        replay(s.plan)
        assert np.array_equal(s.plan.row_ids, s.batches.node_ids)
        assert s.sample_seconds > 0 and s.plan_seconds > 0
    keys = np.concatenate([s.batches.keys for s in sbs])
    assert keys.tolist() == [batch_key(0, i) for i in range(len(keys))]


def test_same_seed_same_epoch_and_saved_plans_replay(tmp_path):
    train = np.arange(N)
    a = list(make().node_epoch(train, epoch=2))
    b = list(make().node_epoch(train, epoch=2))
    for x, y in zip(a, b):
        assert np.array_equal(x.batches.node_ids, y.batches.node_ids)
        assert np.array_equal(x.plan.row_loc, y.plan.row_loc)
        assert np.array_equal(x.plan.load_ids, y.plan.load_ids)
    c = list(make().node_epoch(train, epoch=3))
    assert not np.array_equal(a[0].batches.node_ids, c[0].batches.node_ids)
    a[1].plan.save(tmp_path / "p.npz")
    replay(Plan.load(tmp_path / "p.npz"))


def test_drop_last_and_edge_epoch():
    insp = make(LRUPolicy(N // 20, N), drop_last=True)
    assert insp.num_batches(130) == 2
    edges = np.stack([INDICES[:300], np.repeat(np.arange(N), np.diff(INDPTR))[:300]], 1)
    sbs = list(insp.edge_epoch(edges, epoch=0, num_neg=2))
    assert sum(len(s) for s in sbs) == 4
    for s in sbs:
        replay(s.plan)
        for b in s.batches:
            assert b.edge_label_index.shape == (2, 64 * 3)


def test_runs_in_a_background_thread():
    """Sampling and planning in a thread while the main thread gathers rows gives the same result."""
    train = np.arange(N)
    ref = [s.plan.load_ids for s in make().node_epoch(train, epoch=0)]
    out = []
    worker = threading.Thread(target=lambda: out.extend(
        s.plan.load_ids for s in make().node_epoch(train, epoch=0)))
    worker.start()
    src = np.random.default_rng(0).random((50_000, 16), dtype=np.float32)
    buf = np.empty((40_000, 16), np.float32)
    while worker.is_alive():
        gather_rows(src, np.random.default_rng(1).integers(0, 50_000, 40_000), buf)
    worker.join()
    assert len(out) == len(ref) and all(np.array_equal(x, y) for x, y in zip(out, ref))


class CountingSampler(NeighborSampler):
    """Records the keys of every batch it samples."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.keys: list[int] = []

    def sample(self, seeds, keys):
        self.keys.extend(int(k) for k in keys)
        return super().sample(seeds, keys)


@pytest.mark.parametrize("policy", ["belady", "lru", "sieve", "static"])
@pytest.mark.parametrize("k", [7, 10])
def test_resume_at_batch_k_samples_nothing_before_and_plans_the_same(policy, k):
    """A run resumed at batch k (policy restored to state_at(k) of the interrupted run, saved
    as a dict) samples only batches >= k and yields the same batches and plans from k on."""
    train = np.arange(0, N, 2)

    def build():
        s = CountingSampler(INDPTR, INDICES, [5, 3], seed=4)
        p = make_policy(policy, [N // 10], N, score=np.diff(INDPTR))
        return Inspector(s, p, batch_size=64, superbatch_size=5, seed=1)

    ref = build()
    full = list(ref.node_epoch(train, epoch=1))
    at = next(s for s in full if s.first_batch <= k < s.first_batch + len(s))
    saved = at.state_at(ref.policy, k).to_dict()

    res = build()
    res.policy.restore(PolicyState.from_dict(saved))
    resumed = list(res.node_epoch(train, epoch=1, first_batch=k))
    assert min(res.sampler.keys) == batch_key(1, k)
    assert len(res.sampler.keys) == ref.num_batches(len(train)) - k
    first = resumed[0]
    assert (first.index, first.first_batch) == (at.index, k)
    assert len(first) == at.first_batch + len(at) - k
    skip = k - at.first_batch
    for b in range(len(first)):
        x, y = first.batches[b], at.batches[skip + b]
        assert np.array_equal(x.n_id, y.n_id) and np.array_equal(x.edge_index, y.edge_index)
    assert_same_batches(at.plan, skip, first.plan, 0, len(first))
    assert_same_state(first.plan.state_out, at.plan.state_out)
    later = full[full.index(at) + 1:]
    assert len(resumed) == len(later) + 1
    for x, y in zip(resumed[1:], later):
        assert (x.index, x.first_batch) == (y.index, y.first_batch)
        assert np.array_equal(x.batches.node_ids, y.batches.node_ids)
        assert_same_batches(x.plan, 0, y.plan, 0, len(x))
        assert_same_state(x.plan.state_out, y.plan.state_out)


def test_edge_epoch_from_batch_k():
    insp = make(LRUPolicy(N // 20, N))
    edges = np.stack([INDICES[:700], np.repeat(np.arange(N), np.diff(INDPTR))[:700]], 1)
    full = [s for s in insp.edge_epoch(edges, epoch=0)]
    late = list(make(LRUPolicy(N // 20, N)).edge_epoch(edges, epoch=0, first_batch=6))
    assert [s.first_batch for s in late] == [6, 10]
    keys = np.concatenate([s.batches.keys for s in late])
    assert keys.tolist() == [batch_key(0, i) for i in range(6, 11)]
    assert np.array_equal(late[-1].batches.node_ids, full[-1].batches.node_ids)
    assert np.array_equal(late[-1].batches.label_index, full[-1].batches.label_index)
    with pytest.raises(ValueError, match="first_batch"):
        next(insp.edge_epoch(edges, epoch=0, first_batch=-1))
