"""The executor's CUDA hand-offs (pinned copy on a side stream; zero-copy gather from pinned
host memory). Skipped, not faked, where torch sees no CUDA device."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiered.executor import Executor
from tiered.inspector import inspect
from tiered.plan import make_policy
from tiered.sampling import NeighborSampler
from tiered.tiers.dram import DRAMTier

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("transfer", ["copy", "zero-copy"])
def test_cuda_batches_equal_features(transfer):
    rng = np.random.default_rng(0)
    n, dim = 5000, 32
    dst = np.sort(rng.integers(0, n, 40000))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))])
    indices = rng.integers(0, n, 40000).astype(np.int32)
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    labels = rng.integers(0, 5, n)
    sampler = NeighborSampler(indptr, indices, [5, 5])
    seeds = [rng.choice(n, 128, replace=False) for _ in range(8)]
    sbs = list(inspect(sampler, make_policy("belady", 500, n), seeds, 4))
    ex = Executor(DRAMTier(feats, pin=False), 500, labels, indptr=indptr, device="cuda",
                  transfer=transfer)
    count = 0
    for batch in ex.run(sbs):
        assert batch.x.is_cuda and batch.y.is_cuda and batch.blocks[0].edge_index.is_cuda
        ids = batch.n_id.numpy()
        assert np.array_equal(batch.x.cpu().numpy(), feats[ids])
        assert np.array_equal(batch.y.cpu().numpy(), labels[ids[:batch.batch_size]])
        count += 1
    assert count == 8
