"""Tier manager: placement follows the documented rule for several budgets; impossible budgets fail
early saying how much is needed (and that much is enough); opened tiers hold the right bytes."""
from __future__ import annotations

import numpy as np
import pytest

from node_data import make_node_dataset
from tiered import open_dataset
from tiered.manager import SSD_IO, BudgetError, PlacementError, TierManager, parse_pmem_spec
from tiered.tiers import pmemobj
from tiered.tiers.pmem import array_pool_bytes, pool_capacity, tx_headroom
from tiered.units import parse_size

N, DIM = 20000, 128                 # features: 10.24 MB; indices 640 kB; indptr 160 kB
SLOT, MAP = 40, 4                   # the manager's default cache bookkeeping per slot / per node
TX = 1 << 20                        # small transactions keep test pools small
needs_pmem = pytest.mark.skipif(not pmemobj.available(), reason=str(pmemobj.unavailable_reason()))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    make_node_dataset(root, n=N, avg_deg=8, dim=DIM, chunk_bytes=1 << 20)
    return open_dataset(root)


def _nbytes(ds, *names):
    return sum(ds.layout(n).nbytes for n in names)


SMALL = ("train_idx", "val_idx", "test_idx", "labels", "indptr")          # classes 0 and 1
EMB, OPT = N * 8 * 4, N * 16 * 4
SSD_OPTS = {"queue_depth": 4, "max_run_bytes": 16 << 10}   # small read buffers for a small graph
IO = 4 * (16 + 4 + 4 << 10)         # so one SSD tier's are 96 KiB (rows of at most one page)


def _manager(ds, budget, pmem=None, learnable=True, **kw):
    kw.setdefault("ssd_options", SSD_OPTS)
    m = TierManager(ds, budget, pmem, tx_bytes=TX, **kw)
    if learnable:
        m.add_learnable("emb", (N, 8), role="embedding", init=0.5)
        m.add_learnable("opt", (N, 16), role="optimizer")
    return m


def test_everything_fits_dram(ds):
    p = _manager(ds, "1GiB").plan()
    assert set(p.tiers.values()) == {"dram"}
    assert p.cache_rows == {"dram": 0, "pmem": 0}
    assert sum(p.dram.values()) == _nbytes(ds, *ds.layouts) + EMB + OPT


def test_features_to_ssd_and_the_rest_becomes_the_dram_cache(ds):
    m = _manager(ds, 0)
    m.reserve("plan", 1 << 20)
    fixed = _nbytes(ds, *SMALL, "indices") + EMB + OPT + (1 << 20) + IO
    spare = 3 << 20
    m.dram_budget = fixed + spare
    p = m.plan()
    assert p.tiers["features"] == "ssd"
    assert all(p.tiers[a] == "dram" for a in (*SMALL, "indices", "emb", "opt"))
    assert p.dram[SSD_IO] == IO                         # the features' tier reads through them
    assert p.dram_cache_rows == (spare - N * MAP) // (DIM * 4 + SLOT)
    assert p.pmem_cache_rows == 0
    assert sum(p.dram.values()) <= m.dram_budget


def test_small_and_hot_first_when_dram_runs_short(ds):
    # room for classes 0-2 but not for indices: indices go to the SSD before any learnable does
    budget = _nbytes(ds, *SMALL) + EMB + OPT + 2 * IO + 1000
    p = _manager(ds, budget).plan()
    assert p.tiers["indices"] == "ssd" and p.tiers["features"] == "ssd"
    assert p.tiers["emb"] == p.tiers["opt"] == "dram"
    assert p.dram[SSD_IO] == 2 * IO
    assert p.dram_cache_rows == 0      # 1000 bytes cannot hold the cache's node map


def test_ssd_read_buffers_count_and_can_push_indices_to_the_ssd(ds):
    """Indices fit DRAM until the features' SSD read buffers are counted; then they go to
    the SSD too, and the buffers of both are held."""
    budget = _nbytes(ds, *SMALL, "indices") + EMB + OPT + IO
    p = _manager(ds, budget).plan()
    assert p.tiers["indices"] == "dram" and p.dram[SSD_IO] == IO
    p = _manager(ds, budget - 1).plan()
    assert p.tiers["indices"] == "ssd" and p.dram[SSD_IO] == 2 * IO
    assert sum(p.dram.values()) <= budget - 1
    p = _manager(ds, "1GiB", place={"features": "ssd"}, ssd_options={}).plan()   # defaults
    assert p.dram[SSD_IO] == 64 * (128 + 4 + 4 << 10)


def test_budget_short_of_the_ssd_read_buffers_says_what_is_enough(ds):
    budget = _nbytes(ds, *SMALL) + EMB + OPT + IO       # everything else must go to the SSD
    with pytest.raises(PlacementError, match=r"held for the SSD tiers' read buffers") as e:
        _manager(ds, budget).plan()
    msg = str(e.value)
    needed = parse_size(msg.split("--dram-budget of at least ")[1].split(",")[0].replace(" ", ""))
    assert needed >= budget + IO
    p = _manager(ds, needed).plan()
    assert p.tiers["opt"] == "dram" and sum(p.dram.values()) <= needed


def test_impossible_budget_says_what_is_needed_and_that_is_enough(ds):
    budget = _nbytes(ds, *SMALL) + EMB + 1000          # opt (1.28 MB) cannot fit, no PMem
    with pytest.raises(PlacementError) as e:
        _manager(ds, budget).plan()
    msg = str(e.value)
    assert "'opt' (optimizer, 1.22 MiB)" in msg and "no PMem pool is configured" in msg
    needed = parse_size(msg.split("--dram-budget of at least ")[1].split(",")[0].replace(" ", ""))
    assert needed >= budget + OPT - 1000
    p = _manager(ds, needed).plan()                    # the figure given is sufficient
    assert p.tiers["opt"] == "dram"
    pool_hint = msg.split("a PMem pool of at least ")[1].split(" (")[0]
    assert parse_size(pool_hint.replace(" ", "")) > 0


def test_reservations_larger_than_the_budget(ds):
    m = _manager(ds, "10MiB")
    m.reserve("neighbour cache", "8MiB")
    m.reserve("queues", "4MiB")
    with pytest.raises(PlacementError, match=r"smaller than the engine's reservations, 12\.0 MiB "
                                             r"\(neighbour cache 8\.00 MiB, queues 4\.00 MiB\)"):
        m.plan()
    m.release("queues")
    m.dram_budget = parse_size("64MiB")
    assert m.plan().dram["reserve:neighbour cache"] == 8 << 20


def test_learnable_spills_to_pmem_and_features_fill_the_pool(ds, tmp_path):
    pool = tmp_path / "p.pool"
    budget = _nbytes(ds, *SMALL) + EMB + 1000           # opt does not fit DRAM
    p = _manager(ds, budget, (pool, "64MiB")).plan()
    assert p.tiers["opt"] == "pmem" and p.tiers["emb"] == "dram"
    assert p.tiers["indices"] == "pmem"                 # DRAM is full; the pool comes next
    assert p.tiers["features"] == "pmem"                # fits the pool: no PMem cache needed
    assert p.pmem_cache_rows == 0 and p.dram_cache_rows == 0
    room = pool_capacity(64 << 20) - tx_headroom(TX)
    assert sum(p.pmem.values()) <= room


def test_pmem_cache_when_features_do_not_fit_the_pool(ds, tmp_path):
    pool = tmp_path / "p.pool"
    size = 24 << 20
    budget = _nbytes(ds, *SMALL, "indices") + EMB + OPT + IO + (4 << 20)
    p = _manager(ds, budget, (pool, size)).plan()
    assert p.tiers["features"] == "ssd"
    room = pool_capacity(size) - tx_headroom(TX)
    rows = p.pmem_cache_rows
    assert 0 < rows < N
    assert array_pool_bytes(rows, DIM * 4) <= room < array_pool_bytes(rows + 1, DIM * 4)
    dram_left = (4 << 20) - (rows * SLOT + N * MAP)     # after the PMem cache's bookkeeping
    assert p.dram_cache_rows == (dram_left - N * MAP) // (DIM * 4 + SLOT)
    assert sum(p.dram.values()) <= budget


def test_overrides_and_fixed_caches(ds, tmp_path):
    p = _manager(ds, "1GiB", place={"indices": "ssd", "features": "ssd"}, dram_cache="1MiB").plan()
    assert p.tiers["indices"] == "ssd" and p.tiers["features"] == "ssd"
    assert p.dram_cache_rows == (1 << 20) // (DIM * 4)
    p = _manager(ds, "1GiB", place={"features": "ssd"}, dram_cache=0).plan()
    assert p.dram_cache_rows == 0
    with pytest.raises(PlacementError, match=r"learnable array on the SSD needs a directory"):
        _manager(ds, "1GiB", place={"emb": "ssd"}).plan()
    with pytest.raises(PlacementError, match="needs a PMem pool"):
        _manager(ds, "1GiB", place={"features": "pmem"}).plan()
    with pytest.raises(PlacementError, match=r"place\['features'\] = 'dram': array 'features' "
                                             r"needs 9\.77 MiB there, dram has"):
        _manager(ds, "4MiB", learnable=False, place={"features": "dram"}).plan()
    with pytest.raises(PlacementError, match="no such array"):
        _manager(ds, "1GiB", place={"nope": "dram"}).plan()
    with pytest.raises(PlacementError, match=r"dram_cache of 20000 feature rows needs"):
        _manager(ds, "8MiB", learnable=False, dram_cache="1GiB").plan()


def test_pmem_spec_parsing(tmp_path):
    assert parse_pmem_spec("/mnt/pmem0/a:b.pool:64GiB") == (tmp_path.__class__("/mnt/pmem0/a:b.pool"),
                                                            64 << 30)
    assert parse_pmem_spec(("x.pool", 1 << 30))[1] == 1 << 30
    with pytest.raises(ValueError, match="PATH:SIZE"):
        parse_pmem_spec("64GiB")


def test_reserve_after_open_is_checked_against_the_budget(ds):
    budget = _nbytes(ds, *ds.layouts) + EMB + OPT + (1 << 20)
    with _manager(ds, budget) as m:
        m.open()
        m.reserve("staging", 512 << 10)
        with pytest.raises(BudgetError, match=r"'queues' asks 1\.00 MiB.*--dram-budget of at least"):
            m.reserve("queues", 1 << 20)
        u = m.usage()["dram"]
        assert u["used"] == budget - (1 << 20) + (512 << 10) and u["peak"] == u["used"]
        m.release("staging")
        assert m.usage()["dram"]["peak"] == u["peak"]
        assert "peak" in m.report()


def test_ssd_and_dram_tiers_hold_the_dataset(ds):
    budget = _nbytes(ds, *SMALL) + EMB + OPT + 2 * IO + (2 << 20)
    with _manager(ds, budget) as m:
        tiers = m.open()
        ids = np.random.default_rng(0).integers(0, N, 5000)
        for name in ("features", "indptr", "labels"):
            want = ds.load(name)
            got = tiers[name].read_rows(ids if name != "indptr" else ids + 1)
            assert np.array_equal(got, want[ids if name != "indptr" else ids + 1]), name
        assert m.plan().tiers["features"] == "ssd"
        assert (tiers["emb"].read_rows(ids) == 0.5).all()
        cache = m.cache_tier("dram")
        assert cache.num_rows == m.cache_rows["dram"] > 0 and cache.row_shape == (DIM,)
        assert m.cache_tier("pmem") is None


def test_learnables_go_to_the_ssd_directory_when_memory_is_short(ds, tmp_path):
    budget = _nbytes(ds, *SMALL) + EMB + 3 * IO + 1000
    with pytest.raises(PlacementError, match=r"'opt'.*or let learnable arrays go to the SSD"):
        _manager(ds, budget).plan()
    with _manager(ds, budget, ssd_dir=tmp_path / "ssd") as m:
        p = m.plan()
        assert p.tiers["opt"] == "ssd" and p.tiers["emb"] == "dram"
        assert p.dram[SSD_IO] == 3 * IO and sum(p.dram.values()) <= budget
        tiers = m.open()
        ids = np.arange(0, N, 5)
        assert not tiers["opt"].read_rows(ids).any()              # its init value, 0
        tiers["opt"].write_rows(ids, np.full((len(ids), 16), 2.0, np.float32))
        assert (tiers["opt"].read_rows(ids) == 2.0).all()
        assert "wrote 'opt'" in m.report()
        with pytest.raises(PermissionError):                       # dataset arrays stay read-only
            tiers["features"].write_rows([0], np.zeros((1, DIM), np.float32))


@needs_pmem
def test_pmem_arrays_load_once_and_learnables_resume(ds, tmp_path):
    pool = tmp_path / "p.pool"
    budget = _nbytes(ds, *SMALL) + EMB + 1000
    ids = np.arange(0, N, 7)
    with _manager(ds, budget, f"{pool}:64MiB") as m:
        tiers = m.open()
        assert m.plan().tiers["features"] == "pmem" and m.plan().tiers["opt"] == "pmem"
        assert np.array_equal(tiers["features"].read_rows(ids), ds.load("features")[ids])
        assert np.array_equal(tiers["indices"].read_rows(ids), ds.load("indices")[ids])
        assert not tiers["opt"].read_rows(ids).any()
        tiers["opt"].write_rows(ids, np.full((len(ids), 16), 3.0, np.float32))
        assert "loaded 'features'" in m.report()
    with _manager(ds, budget, f"{pool}:64MiB") as m:
        tiers = m.open()
        report = m.report()
        assert "reused 'features'" in report and "reused 'opt'" in report
        assert (tiers["opt"].read_rows(ids) == 3.0).all()
        assert m.pool.arrays().keys() == {"features", "indices", "opt"}
    # a new placement frees what it no longer uses
    with _manager(ds, "1GiB", f"{pool}:64MiB", place={"opt": "pmem"}) as m:
        m.open()
        assert m.pool.arrays().keys() == {"opt"}


@needs_pmem
def test_pmem_cache_tier_is_opened(ds, tmp_path):
    budget = _nbytes(ds, *SMALL, "indices") + EMB + OPT + IO + (4 << 20)
    with _manager(ds, budget, (tmp_path / "p.pool", "24MiB")) as m:
        m.open()
        cache = m.cache_tier("pmem")
        assert cache.num_rows == m.cache_rows["pmem"] > 0 and not cache.durable
        cache.write_rows(np.arange(10), ds.load("features")[:10])
        assert np.array_equal(cache.read_rows(np.arange(10)), ds.load("features")[:10])


@needs_pmem
def test_the_loaders_multi_tier_plan_takes_its_capacities_from_the_manager(ds, tmp_path):
    from node_data import cfg
    from tiered.train.loader import NodeLoader
    with NodeLoader(cfg(str(ds.path), features_on="ssd", dram_budget="24MiB",
                        pmem=f"{tmp_path / 'p.pool'}:32MiB")) as loader:
        rows = loader.manager.cache_rows
        assert rows["dram"] > 0 and rows["pmem"] > 0
        assert loader.policy.capacities == (rows["dram"], rows["pmem"])
        assert loader.manager.cache_tier("pmem").num_rows == rows["pmem"]
        assert "peak" in loader.manager.report()
