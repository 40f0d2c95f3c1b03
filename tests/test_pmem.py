"""PMem tier: arrays round-trip through libpmemobj pools, errors say what is wrong, threads share safely."""
from __future__ import annotations

import errno
import os
import select
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from tiered import write_array
from tiered.tiers import pmemobj
from tiered.tiers.pmem import (DEFAULT_TX_BYTES, UNDO_ENTRY_BYTES, PMemError, PMemPool,
                               array_pool_bytes, chunk_rows_for, pool_capacity, tx_headroom)

pytestmark = pytest.mark.skipif(not pmemobj.available(),
                                reason=str(pmemobj.unavailable_reason()))


@pytest.fixture
def pool_path(tmp_path):
    return tmp_path / "test.pool"


def _rand(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 100, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape,dtype,chunk_bytes", [
    ((20000, 16), np.float32, 256 << 10),    # 5 allocations
    ((777, 3, 5), np.float16, 4096),         # rows of 30 B, 6 allocations, the last one partial
    ((5000,), np.int64, 8192),               # 1-D array
    ((7, 70000), np.uint8, 4096),            # a row larger than the chunk: one row per allocation
    ((0, 4), np.float32, 4096),              # empty
])
def test_round_trip_across_close_and_reopen(pool_path, shape, dtype, chunk_bytes):
    a = _rand(shape, dtype, 0)
    with PMemPool.create(pool_path, 48 << 20) as pool:
        info = pool.create_array("x", shape, dtype, chunk_bytes=chunk_bytes)
        assert info.num_chunks == -(-shape[0] // chunk_rows_for(info.row_bytes, chunk_bytes))
        tier = pool.tier("x")
        assert not tier.ready
        tier.load(a, source_key=42)
        assert tier.ready
    with PMemPool.open(pool_path) as pool:
        info = pool.info("x")
        assert (info.shape, info.dtype, info.ready, info.source_key) == (shape, np.dtype(dtype), True, 42)
        tier = pool.tier("x")
        rng = np.random.default_rng(1)
        n = shape[0]
        for ids in ([], np.arange(n), rng.integers(0, max(n, 1), 3 * n) if n else [],
                    [n - 1, 0, n - 1] if n else []):
            assert tier.read_rows(ids).tobytes() == a[np.asarray(ids, dtype=np.int64)].tobytes()
        if n:
            views = tier.chunks()
            assert len(views) == info.num_chunks
            assert np.concatenate(views).tobytes() == a.tobytes()


@pytest.mark.parametrize("durable", [True, False])
def test_writes_persist(pool_path, durable):
    a = _rand((3000, 8), np.float32, 2)
    with PMemPool.create(pool_path, 32 << 20) as pool:
        pool.create_array("x", a.shape, a.dtype, chunk_bytes=32 << 10)   # 4 allocations
        tier = pool.tier("x", durable=durable, tx_bytes=8 << 10)   # several transactions per call
        tier.load(a)
        ids = np.random.default_rng(3).permutation(3000)[:2000]
        new = _rand((2000, 8), np.float32, 4)
        tier.write_rows(ids, new)
        a[ids] = new
        assert tier.read_rows(np.arange(3000)).tobytes() == a.tobytes()
        assert tier.stats.rows_written == 2000
    with PMemPool.open(pool_path) as pool:
        assert pool.tier("x").read_rows(np.arange(3000)).tobytes() == a.tobytes()


def test_load_from_dataset_array(tmp_path, pool_path):
    a = _rand((5000, 12), np.float32, 5)
    layout = write_array(tmp_path, "features", a, chunk_bytes=8192)   # 170 rows per file
    with PMemPool.create(pool_path, 32 << 20) as pool:
        pool.create_array("features", a.shape, a.dtype, chunk_bytes=60000)   # 1249 rows each
        tier = pool.tier("features", durable=False)
        tier.load(layout)
        assert tier.read_rows(np.arange(5000)).tobytes() == a.tobytes()
        tier.load(lambda s, e: np.full((e - s, 12), s, np.float32))
        assert (tier.read_rows([0])[0] == 0).all() and tier.read_rows([4999])[0, 0] == 0
        with pytest.raises(ValueError, match="shape"):
            tier.load(np.zeros((10, 12), np.float32))


def test_transaction_rolls_back_across_arrays(pool_path):
    with PMemPool.create(pool_path, 32 << 20) as pool:
        for name in ("emb", "opt"):
            pool.create_array(name, (100, 4), np.float32)
            pool.tier(name).load(np.zeros((100, 4), np.float32))
        emb, opt = pool.tier("emb"), pool.tier("opt")
        with pytest.raises(RuntimeError, match="boom"):
            with pool.transaction():
                emb.write_rows([1, 2], np.ones((2, 4), np.float32))
                opt.write_rows([3], np.ones((1, 4), np.float32))
                raise RuntimeError("boom")
        assert not emb.read_rows(np.arange(100)).any() and not opt.read_rows(np.arange(100)).any()
        with pool.transaction():
            emb.write_rows([1, 2], np.ones((2, 4), np.float32))
            opt.write_rows([3], np.ones((1, 4), np.float32))
        assert emb.read_rows([1, 2]).all() and opt.read_rows([3]).all()


def test_pool_full_write_is_rolled_back(pool_path):
    with PMemPool.create(pool_path, 32 << 20) as pool:
        rows = int(pool.capacity * 0.6) // 64           # undo log of all rows: ~2x the free space
        pool.create_array("x", (rows, 16), np.float32)
        tier = pool.tier("x", tx_bytes=1 << 30)         # so that one write is one transaction
        tier.load(np.zeros((rows, 16), np.float32))
        with pytest.raises(PMemError, match=r"write \d+ rows of array 'x' failed and was rolled "
                                            r"back.*ENOMEM") as e:
            tier.write_rows(np.arange(rows), np.ones((rows, 16), np.float32))
        assert e.value.errno == errno.ENOMEM
        assert not tier.read_rows(np.arange(rows)).any()
        tier.close()
        tier = pool.tier("x", tx_bytes=256 << 10)       # transactions that fit the free space
        tier.write_rows(np.arange(rows), np.ones((rows, 16), np.float32))
        assert tier.read_rows(np.arange(rows)).all()


def test_capacity_model_is_not_optimistic(pool_path):
    """Whatever the model says fits does fit, and a pool holding arrays up to its capacity
    minus tx_headroom() still runs a full default-sized transaction."""
    size = 96 << 20
    rng = np.random.default_rng(0)
    with PMemPool.create(pool_path, size) as pool:
        assert pool.capacity == pool_capacity(size) and pool.free_bytes == pool.capacity
        for i, (chunk, most) in enumerate([(256 << 10, 1000), (3 << 20, 6000), (8 << 20, 9000),
                                           (64 << 20, 9000)]):
            rows = int(rng.integers(1, most))
            need = array_pool_bytes(rows, 1000, chunk)
            assert need <= pool.free_bytes
            pool.create_array(f"a{i}", (rows, 250), np.float32, chunk_bytes=chunk)
            assert pool.info(f"a{i}").pool_bytes == need
        left = pool.free_bytes - tx_headroom()
        rows = left // 512
        while array_pool_bytes(rows, 512, 4 << 20) > left:
            rows -= 100
        pool.create_array("b", (rows, 128), np.float32, chunk_bytes=4 << 20)
        assert pool.used_bytes == sum(i.pool_bytes for i in pool.arrays().values())
        tier = pool.tier("b")
        per_tx = DEFAULT_TX_BYTES // (512 + UNDO_ENTRY_BYTES)
        assert rows > per_tx
        ids = np.random.default_rng(1).permutation(rows)[:per_tx + 100]   # a full transaction + 1
        tier.write_rows(ids, np.ones((len(ids), 128), np.float32))
        assert tier.read_rows(ids).all()


def test_delete_frees_space(pool_path):
    with PMemPool.create(pool_path, 16 << 20) as pool:
        pool.create_array("x", (1000, 100), np.float32)
        used = pool.used_bytes
        assert used >= 400_000
        with pytest.raises(PMemError, match="already exists"):
            pool.create_array("x", (1, 1), np.float32)
        t = pool.tier("x")
        with pytest.raises(PMemError, match="open tier"):
            pool.delete_array("x")
        t.close()
        with pytest.raises(PMemError, match="closed"):
            t.read_rows([0])
        pool.delete_array("x")
        assert pool.arrays() == {} and pool.used_bytes == 0
        pool.create_array("y", (1000, 100), np.float32)   # the space is reusable
    with pytest.raises(PMemError, match="closed"):
        pool.arrays()


def test_errors_name_the_problem(tmp_path, pool_path):
    with pytest.raises(PMemError, match=r"below libpmemobj's minimum of 8\.00 MiB"):
        PMemPool.create(pool_path, 4 << 20)
    with pytest.raises(FileNotFoundError, match="no such pool"):
        PMemPool.open(tmp_path / "missing.pool")

    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(16 << 20))
    with pytest.raises(PMemError, match=r"junk\.bin: not a libpmemobj pool"):
        PMemPool.open(junk)

    other = tmp_path / "other.pool"
    ffi, lib, _ = pmemobj.load()
    pop = lib.pmemobj_create(os.fsencode(other), b"someone-else", 8 << 20, 0o600)
    assert pop != ffi.NULL
    lib.pmemobj_close(pop)
    with pytest.raises(PMemError, match=r"other\.pool: pool has layout 'someone-else', expected 'tiered-v1'"):
        PMemPool.open(other)

    with PMemPool.create(pool_path, 16 << 20) as pool:
        with pytest.raises(PMemError, match="already exists"):
            PMemPool.create(pool_path, 16 << 20)
        with pytest.raises(PMemError, match=r"pool too small for array 'big'.*needs 69\.0 MiB.*"
                                             r"a pool of at least"):
            pool.create_array("big", (1 << 20, 16), np.float32)
        assert pool.arrays() == {}                       # the failed allocation left nothing
        with pytest.raises(KeyError, match="no array 'nope'"):
            pool.tier("nope")
        with pytest.raises(ValueError, match="array name"):
            pool.create_array("x" * 100, (1,), np.float32)


def test_open_twice_is_refused_in_this_process_and_others(pool_path):
    with PMemPool.create(pool_path, 8 << 20) as pool:
        with pytest.raises(PMemError, match="already open in this process"):
            PMemPool.open(pool_path)
        child = subprocess.run(
            [sys.executable, "-c",
             "import sys; from tiered.tiers.pmem import PMemPool, PMemError\n"
             "try: PMemPool.open(sys.argv[1])\n"
             "except PMemError as e: print(e)\n", str(pool_path)],
            capture_output=True, text=True, timeout=60)
        assert f"open in process {os.getpid()}" in child.stdout, child.stdout + child.stderr
        assert pool.path == pool_path
    with PMemPool.open(pool_path):                        # free again once closed
        pass


def _in_forked_child(body) -> str:
    """Run body() in a forked child; its return value (or error) as text, via a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                          # child: never return into pytest
        try:
            msg = str(body())
        except BaseException as e:                        # noqa: BLE001 - reported to the parent
            msg = f"child failed: {type(e).__name__}: {e}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        if not select.select([f], [], [], 60)[0]:         # a deadlocked child fails, not hangs
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("forked child did not answer within 60 s (deadlocked on a lock?)")
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


def test_forked_children_read_but_never_write_or_unlock(pool_path):
    """A process forked from the owner reads through the inherited pool (serially: numba's
    OpenMP aborts a forked child), is refused writes, and its close() keeps the owner's lock."""
    a = _rand((40000, 16), np.float32, 6)                 # a full read is 2.5 MiB: parallel size
    with PMemPool.create(pool_path, 32 << 20) as pool:
        pool.create_array("x", a.shape, a.dtype, chunk_bytes=1 << 20)      # 3 allocations
        tier = pool.tier("x")
        tier.load(a)
        ids = np.random.default_rng(7).integers(0, len(a), len(a))
        assert tier.read_rows(ids).tobytes() == a[ids].tobytes()     # parent ran OpenMP
        held = tier._rw.write()                            # a parent thread mid-write at the fork
        held.__enter__()

        def child():
            assert pool.forked and not pool.closed
            assert tier.read_rows(ids).tobytes() == a[ids].tobytes()
            refused = []
            for attempt in (lambda: tier.write_rows([0], a[:1]), lambda: tier.load(a),
                            lambda: pool.create_array("y", (1,), np.float32),
                            lambda: PMemPool.open(pool_path)):
                try:
                    attempt()
                except PMemError as e:
                    refused.append(str(e))
            pool.close()
            return "\n".join(refused)

        try:
            out = _in_forked_child(child)
        finally:
            held.__exit__(None, None, None)
        assert "child failed" not in out, out
        assert out.count(f"only process {os.getpid()}, which opened the pool, may change it") == 3
        assert f"open in process {os.getpid()}, which this process was forked from" in out
        assert pmemobj.lock_holder(pool_path) == os.getpid()          # still locked by the owner
        tier.write_rows([0], a[1:2])                                   # and still the owner's
        assert tier.read_rows([0]).tobytes() == a[1].tobytes()


@pytest.mark.parametrize("durable", [True, False])
def test_threads_never_see_torn_rows(pool_path, durable):
    """Readers racing a writer see each row whole: every element equals the row's version."""
    n, width = 512, 256
    with PMemPool.create(pool_path, 32 << 20) as pool:
        pool.create_array("x", (n, width), np.int64, chunk_bytes=256 << 10)   # 4 allocations
        tier = pool.tier("x", durable=durable)
        tier.load(np.zeros((n, width), np.int64))
        stop = threading.Event()
        bad: list[str] = []

        def writer():
            rng = np.random.default_rng(0)
            for version in range(1, 60):
                ids = rng.permutation(n)[:300]
                tier.write_rows(ids, np.full((300, width), version, np.int64))
            stop.set()

        def reader(seed):
            rng = np.random.default_rng(seed)
            while not stop.is_set():
                rows = tier.read_rows(rng.integers(0, n, 4000))   # > 1 MiB: the parallel kernel
                torn = (rows != rows[:, :1]).any(axis=1)
                if torn.any():
                    bad.append(f"{torn.sum()} torn rows")

        threads = [threading.Thread(target=writer)] + [
            threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not bad, bad[:3]


def test_close_waits_for_readers_and_detaches_tiers(pool_path):
    pool = PMemPool.create(pool_path, 16 << 20)
    pool.create_array("x", (100, 4), np.float32)
    tier = pool.tier("x")
    assert pool.tier("x") is tier
    with pytest.raises(PMemError, match="durable=True"):
        pool.tier("x", durable=False)
    pool.close()
    pool.close()
    with pytest.raises(PMemError, match="closed"):
        tier.read_rows([0])


def test_reports_what_backs_the_pool(pool_path):
    with PMemPool.create(pool_path, 16 << 20) as pool:
        assert pool.is_pmem == pmemobj.is_dax(pool_path)
        if not pool.is_pmem:     # an ordinary file here: flushes are forced CPU flushes (see pmemobj.py)
            assert pool.persistence in ("page-cache", "msync")
        assert "sds.at_create=0" in os.environ["PMEMOBJ_CONF"]
        pool.create_array("x", (10, 4), np.float32)
        h = pool.tier("x").hints
        assert h.kind == "pmem" and h.persistent and h.page_bytes in (256, 4096)


@pytest.mark.skipif(shutil.which("pmempool") is None, reason="pmempool (Debian pmdk-tools) absent")
def test_pmempool_check_accepts_our_pools(pool_path):
    with PMemPool.create(pool_path, 32 << 20) as pool:
        pool.create_array("x", (1000, 32), np.float32, chunk_bytes=32 << 10)
        pool.tier("x").write_rows(np.arange(1000), np.ones((1000, 32), np.float32))
    res = subprocess.run(["pmempool", "check", "-v", str(pool_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
