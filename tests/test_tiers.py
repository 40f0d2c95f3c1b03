"""Every tier returns exactly the source array's bytes, whatever the ids."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tiered import FormatError, write_array
from tiered.tiers.dram import DRAMTier
from tiered.tiers.ssd import PAGE_BYTES, SSDTier, choose_backend

DTYPES = [np.float32, np.float16, np.int32, np.int64, np.uint8]


def _make(tmp_path, n, row, dtype, chunk_bytes, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + row
    a = rng.integers(-1000, 1000, size=shape).astype(dtype) if np.dtype(dtype).kind in "iu" \
        else rng.standard_normal(shape).astype(dtype)
    name = f"a{len(list(tmp_path.iterdir()))}"
    return a, write_array(tmp_path, name, a, chunk_bytes=chunk_bytes)


def _tiers(layout, array):
    yield DRAMTier(array, pin=False)
    for backend in ("io_uring", "threads"):
        try:
            yield SSDTier(layout, backend=backend, queue_depth=8)
        except OSError as e:
            assert backend == "io_uring", e       # threads always work
    yield SSDTier(layout, max_run_bytes=PAGE_BYTES, max_gap_pages=2)


def _id_sets(n, rng):
    return {
        "random": rng.integers(0, n, 3 * n),
        "sorted": np.sort(rng.integers(0, n, n)),
        "duplicated": np.repeat(rng.integers(0, n, 5), 4),
        "boundary": np.array([0, n - 1, 0, n - 1]),
        "empty": np.array([], dtype=np.int64),
        "all": np.arange(n),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 700), width=st.sampled_from([1, 3, 13, 128, 1025, 1433]),
       dtype=st.sampled_from(DTYPES), chunk_kib=st.sampled_from([4, 16, 1 << 20]),
       seed=st.integers(0, 2**16))
def test_every_tier_returns_source_bytes(tmp_path, n, width, dtype, chunk_kib, seed):
    a, layout = _make(tmp_path, n, (width,), dtype, chunk_kib << 10, seed)
    rng = np.random.default_rng(seed)
    for tier in _tiers(layout, a):
        with tier:
            for kind, ids in _id_sets(n, rng).items():
                out = tier.read_rows(ids)
                assert out.tobytes() == a[ids].tobytes(), (tier, kind)


def test_one_dimensional_array(tmp_path):
    a = np.arange(10_000, dtype=np.int32)
    layout = write_array(tmp_path, "idx", a, chunk_bytes=8192)
    with SSDTier(layout) as t:
        ids = np.array([9999, 0, 2048, 2047, 5])
        assert (t.read_rows(ids) == a[ids]).all()


def test_page_straddling_rows(tmp_path):
    # 1433 float32 = 5732 B: most rows cross a 4 KiB page boundary.
    a, layout = _make(tmp_path, 300, (1433,), np.float32, 1 << 30)
    ids = np.array([k for k in range(300) if (k * 5732) // 4096 != (k * 5732 + 5731) // 4096])
    assert len(ids) > 200
    with SSDTier(layout) as t:
        assert t.read_rows(ids).tobytes() == a[ids].tobytes()


def test_shared_pages_are_read_once(tmp_path):
    a, layout = _make(tmp_path, 4096, (128,), np.float32, 1 << 30)   # 8 rows per page
    with SSDTier(layout, max_run_bytes=PAGE_BYTES) as t:
        t.read_rows(np.arange(0, 64))             # 8 pages, each holding 8 requested rows
        assert t.stats.bytes_read == 8 * PAGE_BYTES
        t.stats.reset()
        t.read_rows(np.array([0, 1, 2, 800, 801]))  # 2 pages
        assert t.stats.bytes_read == 2 * PAGE_BYTES


def test_write_rows_round_trip(tmp_path):
    a, layout = _make(tmp_path, 1000, (7,), np.float32, 4096)
    new = np.full((3, 7), 42.0, np.float32)
    with SSDTier(layout, writable=True) as t:
        t.write_rows(np.array([0, 500, 999]), new)
        t.flush()
        assert (t.read_rows(np.array([0, 500, 999])) == new).all()
        assert (t.read_rows(np.array([1])) == a[1]).all()
    with SSDTier(layout) as t:
        with pytest.raises(PermissionError):
            t.write_rows(np.array([1]), new[:1])
    d = DRAMTier(a.copy(), pin=False)
    d.write_rows(np.array([3, 4]), new[:2])
    assert (d.read_rows(np.array([3, 4])) == 42).all()
    with pytest.raises(ValueError, match="unique"):
        d.write_rows(np.array([3, 3]), new[:2])


@pytest.mark.parametrize("bad", [[-1], [1000], [0, 5, 1000]])
def test_ids_out_of_range(tmp_path, bad):
    a, layout = _make(tmp_path, 1000, (4,), np.float32, 4096)
    for tier in (DRAMTier(a, pin=False), SSDTier(layout)):
        with pytest.raises(IndexError, match=r"\[0, 1000\)"):
            tier.read_rows(np.array(bad))


def test_bad_buffers_and_ids(tmp_path):
    a, layout = _make(tmp_path, 10, (4,), np.float32, 4096)
    with SSDTier(layout) as t:
        with pytest.raises(ValueError, match="shape"):
            t.read_rows([1, 2], out=np.empty((2, 5), np.float32))
        with pytest.raises(ValueError, match="dtype"):
            t.read_rows([1, 2], out=np.empty((2, 4), np.float64))
        with pytest.raises(TypeError, match="integers"):
            t.read_rows(np.array([1.5]))
    with pytest.raises(ValueError, match="closed"):
        t.read_rows([1])


def test_truncated_chunk_file(tmp_path):
    a, layout = _make(tmp_path, 1000, (4,), np.float32, 4096)
    victim = layout.chunk_paths()[1]
    os.truncate(victim, 100)
    with pytest.raises(FormatError, match=rf"{victim}.*100 bytes, expected 4096"):
        SSDTier(layout)


def test_truncated_after_open_raises_not_crashes(tmp_path):
    a, layout = _make(tmp_path, 1000, (4,), np.float32, 1 << 20)
    with SSDTier(layout) as t:
        os.truncate(layout.chunk_paths()[0], 4096)
        with pytest.raises(OSError, match="shorter"):
            t.read_rows(np.array([999]))


def test_buffered_fallback_on_filesystem_without_o_direct(no_direct_dir):
    from pathlib import Path
    a = np.arange(5000 * 3, dtype=np.float32).reshape(5000, 3)
    layout = write_array(Path(no_direct_dir), "x", a, chunk_bytes=8192)
    with pytest.warns(RuntimeWarning, match="refuses O_DIRECT"):
        t = SSDTier(layout)
    with t:
        assert not t.direct
        ids = np.random.default_rng(0).integers(0, 5000, 2000)
        assert (t.read_rows(ids) == a[ids]).all()


def test_backend_choice():
    assert choose_backend("auto") == "native"
    assert choose_backend("threads") == "native"
    with pytest.raises(ValueError, match="unknown SSD backend"):
        choose_backend("mmap")
    try:
        import kvikio  # noqa: F401
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        assert choose_backend("kvikio") == "kvikio"
    else:
        with pytest.raises(RuntimeError, match="kvikio"):
            choose_backend("kvikio")


def test_stats_count_requests(tmp_path):
    a, layout = _make(tmp_path, 100, (4,), np.float32, 4096)
    with SSDTier(layout) as t:
        t.read_rows(np.arange(10))
        t.read_rows(np.array([], dtype=np.int64))
        s = t.stats.as_dict()
        assert s["read_requests"] == 1 and s["rows_read"] == 10 and s["bytes_read"] >= 4096
