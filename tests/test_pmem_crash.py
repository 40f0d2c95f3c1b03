"""Crash consistency: a process writing rows in transactions is SIGKILLed at random moments.

After each kill the pool is reopened (libpmemobj rolls the interrupted
transaction back) and every row must hold exactly the value of the last
committed generation; a second array written by plain `write_rows` calls,
split into many small transactions, must hold whole rows of the last or the
previous generation. `pmempool check` must accept the pool before and after
recovery. The raw pool file is also read before recovery, to count the kills
that really interrupted a transaction (uncommitted values were on the media).
"""
from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from tiered.tiers import pmemobj
from tiered.tiers.pmem import PMemPool

pytestmark = pytest.mark.skipif(not pmemobj.available(),
                                reason=str(pmemobj.unavailable_reason()))

N, W = 2048, 32                 # rows x int64 columns (256 B rows, 3 allocations per array)
PER_GEN = 1500                  # rows one generation rewrites
N_LOOSE = 400


def _values(ids: np.ndarray, gen: int) -> np.ndarray:
    """Row r of generation g: every column says (g, r, column), so a torn row is visible."""
    return (np.int64(gen) << 40) + ids[:, None].astype(np.int64) * 64 + np.arange(W)


def _ids(gen: int) -> np.ndarray:
    return np.random.default_rng(gen).choice(N, PER_GEN, replace=False)


def _child(path: str, ready) -> None:
    """Forever: generation g+1 into `rows` and `meta` as one transaction, then all of
    `loose` with plain write_rows (many small transactions)."""
    pool = PMemPool.open(path)
    rows = pool.tier("rows", tx_bytes=48 << 10)       # nested, several per generation
    loose = pool.tier("loose", tx_bytes=48 << 10)     # independent transactions
    meta = pool.tier("meta")
    gen = int(meta.read_rows([0])[0, 0])
    while True:
        gen += 1
        ids = _ids(gen)
        with pool.transaction():
            rows.write_rows(ids, _values(ids, gen))
            meta.write_rows(np.array([0]), np.array([[gen]], dtype=np.int64))
        perm = np.random.default_rng(gen + 10**9).permutation(N_LOOSE)
        loose.write_rows(perm, _values(perm, gen))
        if ready is not None:
            ready.send(gen)
            ready.close()
            ready = None


def _expected(gen: int, cache: dict) -> np.ndarray:
    """State after generations 1..gen (incremental replay)."""
    last = max(g for g in cache if g <= gen)
    state = cache[last].copy()
    for g in range(last + 1, gen + 1):
        ids = _ids(g)
        state[ids] = _values(ids, g)
    cache[gen] = state
    return state


def _raw_generations(path, offsets) -> int:
    """Highest generation found in the raw file (before libpmemobj recovers it)."""
    offs, chunk_rows = offsets
    with open(path, "rb") as f:
        data = f.read()
    top = 0
    for c, off in enumerate(offs):
        n = min(chunk_rows, N - c * chunk_rows)
        block = np.frombuffer(data, np.int64, count=n * W, offset=int(off))
        top = max(top, int((block >> 40).max()))
    return top


def _pmempool_check(path) -> None:
    if shutil.which("pmempool") is None:
        return
    res = subprocess.run(["pmempool", "check", "-v", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, f"pmempool check {path}: {res.stdout}{res.stderr}"


@pytest.mark.parametrize("kills,time_limit", [
    (40, 40.0),                                                   # CI: about 10 s
    pytest.param(500, 600.0, marks=pytest.mark.slow, id="slow"),  # many more crash points
])
def test_sigkill_never_leaves_a_torn_or_uncommitted_row(tmp_path, kills, time_limit):
    path = tmp_path / "crash.pool"
    with PMemPool.create(path, 32 << 20) as pool:
        for name, n in (("rows", N), ("loose", N_LOOSE)):
            pool.create_array(name, (n, W), np.int64, chunk_bytes=200_000)
            pool.tier(name).load(_values(np.arange(n), 0))
        pool.create_array("meta", (1, 1), np.int64)
        pool.tier("meta").load(np.zeros((1, 1), np.int64))
        # compile the transactional kernel here, so that forked children start writing at once
        pool.tier("meta").write_rows(np.array([0]), np.zeros((1, 1), np.int64))
        entry, info = pool._find("rows")
        raw_offsets = (pool._chunk_offsets(entry), info.chunk_rows)
        assert info.num_chunks == 3

    ctx = multiprocessing.get_context("fork")      # children inherit the compiled kernels
    cache = {0: _values(np.arange(N), 0)}
    rng = random.Random(0)
    interrupted = done = 0
    start = time.monotonic()
    while done < kills and time.monotonic() - start < time_limit:
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child, args=(str(path), send), daemon=True)
        child.start()
        send.close()
        assert recv.poll(30), "child never committed a generation"
        recv.recv()
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        done += 1

        raw_top = _raw_generations(path, raw_offsets)
        _pmempool_check(path)
        with PMemPool.open(path) as pool:
            gen = int(pool.tier("meta").read_rows([0])[0, 0])
            rows = pool.tier("rows").read_rows(np.arange(N))
            loose = pool.tier("loose").read_rows(np.arange(N_LOOSE))
        interrupted += raw_top > gen
        assert np.array_equal(rows, _expected(gen, cache)), f"kill {done}: rows differ from gen {gen}"
        whole_now = (loose == _values(np.arange(N_LOOSE), gen)).all(axis=1)
        whole_before = (loose == _values(np.arange(N_LOOSE), gen - 1)).all(axis=1)
        assert (whole_now | whole_before).all(), \
            f"kill {done}: loose rows {np.flatnonzero(~(whole_now | whole_before))[:5]} are torn"
        _pmempool_check(path)

    print(f"{done} kills, {interrupted} interrupted a transaction, {time.monotonic() - start:.1f} s")
    assert done >= min(10, kills), f"only {done} kills in {time_limit} s"
    # most kills land inside a transaction; recovery must have had real work to do
    assert interrupted >= 1, f"no kill out of {done} interrupted a transaction"
