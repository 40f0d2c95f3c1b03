"""Learnable tables on tiers: row optimizers == torch's sparse optimizers on a dense table, and
a table replaying cache plans (with evictions, on the SSD) == the same updates all in DRAM."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tiered.plan import AccessTrace, make_policy
from tiered.recsys.embedding import EmbeddingTable, io_counts
from tiered.recsys.optim import RowAdagrad, SparseAdam, make_row_optimizer
from tiered.recsys.storage import create_table, normal_rows
from tiered.tiers.dram import DRAMTier

N, DIM = 300, 8


def _batches(seed: int, count: int, size: int) -> list[np.ndarray]:
    """Distinct ids per batch, skewed so that some rows are hot (caches then matter)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        ids = np.unique((rng.pareto(1.2, size * 2) * 20).astype(np.int64) % N)[:size]
        out.append(rng.permutation(ids))
    return out


def _grad(ids: np.ndarray, params: np.ndarray, step: int) -> np.ndarray:
    """A deterministic gradient that depends on the current parameters (like a real loss)."""
    return (np.sin(params * 3 + step) + 0.01 * ids[:, None]).astype(np.float32)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
@pytest.mark.parametrize("name", ["adam", "adagrad"])
def test_row_optimizer_matches_torch_sparse_optimizer(name):
    """Gradients here do not depend on the parameters, so rounding differences cannot grow."""
    init = normal_rows(7, (1 + (2 if name == "adam" else 1), DIM))(0, N)
    emb = torch.nn.Embedding(N, DIM, sparse=True)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(init[:, 0, :]))
    lr = 0.05
    ref_opt = (torch.optim.SparseAdam(emb.parameters(), lr=lr) if name == "adam"
               else torch.optim.Adagrad(emb.parameters(), lr=lr))
    table = init.copy()
    opt = make_row_optimizer(name, lr)
    for step, ids in enumerate(_batches(1, 12, 40)):
        # reference: dense table, sparse gradient through nn.Embedding
        t_ids = torch.from_numpy(ids)
        rows_t = emb(t_ids)
        g = torch.from_numpy(_grad(ids, init[ids, 0, :], step))
        ref_opt.zero_grad()
        (rows_t * g).sum().backward()
        ref_opt.step()
        # row-wise: gather rows with their state, update in place, scatter back
        rows = table[ids]
        opt.step(rows, _grad(ids, init[ids, 0, :], step))
        table[ids] = rows
    # equal up to rounding: torch's vectorised sqrt is not correctly rounded (1 ulp apart)
    np.testing.assert_allclose(table[:, 0, :], emb.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    touched = np.unique(np.concatenate(_batches(1, 12, 40)))
    untouched = np.setdiff1d(np.arange(N), touched)
    np.testing.assert_array_equal(table[untouched], init[untouched])


def test_row_optimizer_rejects_bad_rows():
    opt = SparseAdam(lr=0.1)
    with pytest.raises(ValueError, match="rows must be float32 of shape"):
        opt.step(np.zeros((4, 2, DIM), np.float32), np.zeros((4, DIM), np.float32))
    with pytest.raises(ValueError, match="learning rate"):
        RowAdagrad(lr=0)
    with pytest.raises(ValueError, match="unknown row optimizer"):
        make_row_optimizer("sgd", 0.1)


def _train(table: EmbeddingTable, policy, batches, superbatch: int) -> None:
    """Replay plans of `policy` over `batches`, updating rows like a training loop."""
    step = 0
    for a in range(0, len(batches), superbatch):
        group = batches[a:a + superbatch]
        plan = policy.plan(AccessTrace.from_batches(group, N))
        for b in range(plan.num_batches):
            bp = plan.batch(b)
            rows = table.gather(bp)
            np.testing.assert_array_equal(bp.row_ids, group[b])
            table.update(bp, rows, _grad(bp.row_ids.astype(np.int64), rows[:, 0, :], step))
            step += 1
        if a % (2 * superbatch) == 0:
            table.flush()               # an epoch boundary now and then


@pytest.mark.parametrize("policy", ["belady", "lru", "sieve", "static"])
def test_table_with_evictions_on_ssd_equals_dram(tmp_path, policy):
    batches = _batches(3, 40, 60)
    row_shape = (3, DIM)
    init = normal_rows(11, row_shape)
    ref = EmbeddingTable(create_table("dram", "emb", N, row_shape, init), SparseAdam(0.05), 0)
    _train(ref, make_policy("none", 0, N), batches, 8)
    cap = N // 4
    tier = create_table("ssd", "emb", N, row_shape, init, directory=tmp_path)
    score = np.bincount(np.concatenate(batches), minlength=N)
    table = EmbeddingTable(tier, SparseAdam(0.05), cap)
    _train(table, make_policy(policy, cap, N, score), batches, 8)
    assert table.stats.hits > 0 and table.stats.writebacks > 0
    table.flush()
    on_disk = tier.layout.read_all()            # the file itself, not through the tier
    np.testing.assert_array_equal(on_disk, ref.table())
    tier.close()


def test_flush_writes_each_dirty_row_once_and_io_counts_predicts_writes(tmp_path):
    batches = _batches(5, 16, 50)
    init = normal_rows(2, (2, DIM))
    cap = 60
    table = EmbeddingTable(create_table("dram", "emb", N, (2, DIM), init), RowAdagrad(0.1), cap)
    policy = make_policy("belady", cap, N)
    plan = policy.plan(AccessTrace.from_batches(batches, N))
    reads, writes = io_counts(plan, N)
    before = table.backing.stats.rows_written
    for b in range(plan.num_batches):
        bp = plan.batch(b)
        rows = table.gather(bp)
        table.update(bp, rows, np.ones((len(rows), DIM), np.float32))
    assert table.stats.loads == reads.sum()
    assert table.backing.stats.rows_written - before == writes.sum()
    cached = int(np.count_nonzero(table.slot_node >= 0))
    assert table.flush() == cached
    assert table.flush() == 0                    # clean after a flush


def test_table_checks_row_shape_and_plan_capacity():
    tier = DRAMTier(np.zeros((N, 2, DIM), np.float32))
    with pytest.raises(ValueError, match=r"rows must be float32 of shape \(3, dim\)"):
        EmbeddingTable(tier, SparseAdam(0.1), 0)
    table = EmbeddingTable(tier, RowAdagrad(0.1), 10)
    plan = make_policy("lru", 20, N).plan(AccessTrace.from_batches([np.arange(20)], N))
    plan = make_policy("lru", 20, N).plan(AccessTrace.from_batches([np.arange(20), np.arange(20)], N))
    with pytest.raises(ValueError, match="the DRAM slab has 10 rows"):
        table.gather(plan.batch(1))


def test_same_seed_same_rows_on_every_tier(tmp_path):
    init = normal_rows(4, (3, DIM), std=0.5)
    a = create_table("dram", "t", 1000, (3, DIM), init)
    b = create_table("ssd", "t", 1000, (3, DIM), init, directory=tmp_path)
    ids = np.arange(1000)
    np.testing.assert_array_equal(a.read_rows(ids), b.read_rows(ids))
    np.testing.assert_array_equal(init(10, 20), init(0, 1000)[10:20])
    assert np.all(a.read_rows(ids)[:, 1:] == 0)
    b.close()
