"""The inspector: superbatches chain their cache state, plans replay, runs are reproducible,
and it can run in a background thread."""
from __future__ import annotations

import threading

import numpy as np

from tiered.gather import gather_rows
from tiered.inspector import Inspector, batch_key
from tiered.plan import BeladyPolicy, LRUPolicy, Plan, replay
from tiered.sampling import NeighborSampler

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
