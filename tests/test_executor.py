"""The executor replays plans into batches whose rows equal the features of their n_id, exactly."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from node_data import make_node_dataset
from tiered import open_dataset
from tiered.executor import Executor
from tiered.inspector import inspect
from tiered.plan import make_policy
from tiered.sampling import NeighborSampler
from tiered.tiers.dram import DRAMTier
from tiered.tiers.ssd import SSDTier


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("exec")
    arrays = make_node_dataset(root, n=3000, dim=24)
    return root, arrays


def superbatches(arrays, fanouts=(5, 5), batch=64, per=4, num=12, seed=0, policy=None,
                 first_batch=0):
    """Sampled + planned superbatches for `num` batches of random seeds."""
    sampler = NeighborSampler(arrays["indptr"], arrays["indices"], list(fanouts), seed=seed)
    rng = np.random.default_rng(seed)
    seeds = [rng.choice(3000, batch, replace=False) for _ in range(num)]
    return list(inspect(sampler, policy, seeds, per, first_batch=first_batch))


def ssd(root):
    return SSDTier(open_dataset(root).layout("features"))


def no_executor_threads():
    return not [t for t in threading.enumerate() if t.name.startswith("tiered-")]


@pytest.mark.parametrize("policy,caps", [("belady", 300), ("lru", 300), ("sieve", 200),
                                         ("none", 0), ("belady", 3000)])
def test_batches_equal_features_of_their_rows(data, policy, caps):
    root, arrays = data
    feats = arrays["features"]
    pol = make_policy(policy, caps, 3000)
    with ssd(root) as tier:
        ex = Executor(tier, caps, arrays["labels"])
        n = 0
        for batch in ex.run(superbatches(arrays, policy=pol)):
            ids = batch.n_id.numpy()
            assert np.array_equal(batch.x.numpy(), feats[ids])
            assert np.array_equal(batch.y.numpy(), arrays["labels"][ids[:batch.batch_size]])
            assert batch.index == n
            n += 1
        assert n == 12
        st = ex.stats
        assert st.level0_hits + sum(st.loads) == st.rows
        assert st.batches == 12 and (policy == "none" or caps == 0 or st.level0_hits > 0)
        assert sum(st.load_bytes) >= st.loads[-1] * tier.row_bytes
    assert no_executor_threads()


def test_two_level_cache(data):
    """Belady over DRAM (level 0) + a second cache level (here a DRAM tier standing in for PMem)."""
    root, arrays = data
    pol = make_policy("belady", (150, 400), 3000)
    level1 = DRAMTier(np.zeros((400, 24), np.float32), name="level1")
    with ssd(root) as tier:
        ex = Executor(tier, 150, arrays["labels"], cache_tiers=[level1])
        for batch in ex.run(superbatches(arrays, policy=pol)):
            assert np.array_equal(batch.x.numpy(), arrays["features"][batch.n_id.numpy()])
        assert ex.stats.loads[0] > 0 and level1.stats.rows_written > 0


def test_cpu_handoff_is_a_view_of_the_ring(data):
    root, arrays = data
    with ssd(root) as tier:
        ex = Executor(tier, 300, None, prefetch=1)
        it = ex.run(superbatches(arrays, policy=make_policy("belady", 300, 3000)))
        batch = next(it)
        bases = [b.data_ptr() for b in ex._ring.bufs if b is not None]
        assert batch.x.data_ptr() in bases and batch.y is None
        it.close()
    assert no_executor_threads()


def test_resume_mid_superbatch_gives_the_same_batches(data):
    """Policy restored to its state before batch 6, caches filled from it, inspection from
    batch 6: the rest of the run is identical to the uninterrupted one."""
    root, arrays = data
    policy = make_policy("belady", 300, 3000)
    full = superbatches(arrays, policy=policy)
    state = full[1].state_at(policy, 6)            # batch 6 is inside superbatch 1 (4..7)
    resumed = make_policy("belady", 300, 3000)
    resumed.restore(state)
    rest = superbatches(arrays, policy=resumed, first_batch=6)
    with ssd(root) as tier:
        ex = Executor(tier, 300, None)
        ref = [(b.index, b.x.numpy().copy()) for b in ex.run(full)]
        ex2 = Executor(tier, 300, None)
        ex2.restore(state.cache)
        got = [(b.index, b.x.numpy().copy()) for b in ex2.run(rest, first_index=6)]
        # the slab is what Belady's state says at the end
        st = full[-1].plan.state_out
        on0 = st.level == 0
        assert np.array_equal(ex2.slab[st.slot[on0]], arrays["features"][st.node[on0]])
    assert [i for i, _ in got] == list(range(6, 12))
    for (i, x), (j, y) in zip(ref[6:], got):
        assert i == j and np.array_equal(x, y)


def test_consumer_stopping_early_joins_threads(data):
    root, arrays = data
    with ssd(root) as tier:
        ex = Executor(tier, 300, None, prefetch=1)
        with pytest.raises(KeyboardInterrupt):
            for batch in ex.run(superbatches(arrays, policy=make_policy("belady", 300, 3000))):
                if batch.index == 2:
                    raise KeyboardInterrupt        # what Ctrl-C does inside the training loop
        assert no_executor_threads()


class FailingTier(DRAMTier):
    def _read(self, ids, out):
        if self.stats.read_requests >= 3:
            raise OSError("device gone")
        return super()._read(ids, out)


def test_tier_error_reaches_consumer_and_threads_end(data):
    root, arrays = data
    tier = FailingTier(arrays["features"], name="failing")
    ex = Executor(tier, 300, None)
    seen = 0
    with pytest.raises(OSError, match="device gone"):
        for _ in ex.run(superbatches(arrays, policy=make_policy("belady", 300, 3000))):
            seen += 1
    assert seen == 3 and no_executor_threads()


def test_cuda_paths_need_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_executor_cuda.py covers the CUDA paths")
    with pytest.raises(RuntimeError, match="cuda"):
        Executor(DRAMTier(np.zeros((4, 2), np.float32)), 1, None, device="cuda")
