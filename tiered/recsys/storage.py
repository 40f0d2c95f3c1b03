"""Where a learnable table's rows live: a DRAM array, a writable file on the SSD, or a PMem pool.

The row values at creation depend only on the seed and the row id (rows are
generated in fixed blocks), so the same seed gives the same table on every
tier: what the all-in-DRAM vs on-SSD equality rests on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..format import ArrayWriter
from ..tiers.base import Tier
from ..tiers.dram import DRAMTier
from ..units import parse_size

TABLE_TIERS = ("dram", "ssd", "pmem")
_INIT_BLOCK = 1 << 16            # rows generated per random stream
_WRITE_BLOCK_BYTES = 64 << 20

RowInit = Callable[[int, int], np.ndarray]


def normal_rows(seed: int, row_shape: tuple[int, int], std: float = 0.1,
                state_value: float = 0.0) -> RowInit:
    """f(start, stop) -> rows: parameters ~ N(0, std) (row[0]), optimizer state = state_value
    (row[1:]). Block b of _INIT_BLOCK rows is drawn from the stream (seed, b)."""
    slots, dim = row_shape

    def rows(a: int, b: int) -> np.ndarray:
        out = np.full((b - a, slots, dim), state_value, np.float32)
        for blk in range(a // _INIT_BLOCK, (b - 1) // _INIT_BLOCK + 1 if b > a else 0):
            lo = blk * _INIT_BLOCK
            vals = np.random.default_rng([seed, blk]).standard_normal((_INIT_BLOCK, dim),
                                                                       dtype=np.float32)
            s, e = max(a, lo), min(b, lo + _INIT_BLOCK)
            out[s - a:e - a, 0, :] = vals[s - lo:e - lo] * np.float32(std)
        return out

    return rows


def create_table(kind: str, name: str, num_rows: int, row_shape: tuple[int, int], init: RowInit,
                 *, directory: str | os.PathLike | None = None,
                 pmem: str | None = None) -> Tier:
    """A writable tier of `num_rows` float32 rows of `row_shape`, filled by `init`.

    kind "dram": an in-process array; "ssd": array `name` written under `directory`
    (a dataset-format zarr array, read with O_DIRECT, rows written back in place);
    "pmem": array `name` in the libpmemobj pool `pmem` ("PATH:SIZE", created if absent,
    replacing an array of that name), written in transactions.
    """
    shape = (int(num_rows),) + tuple(int(s) for s in row_shape)
    if kind == "dram":
        array = np.empty(shape, np.float32)
        step = _block_rows(shape)
        for a in range(0, shape[0], step):
            array[a:a + step] = init(a, min(shape[0], a + step))
        return DRAMTier(array, name=f"dram:{name}", pin=False)
    if kind == "ssd":
        if directory is None:
            raise ValueError(f"table {name!r} on the SSD needs a directory for its file")
        from ..tiers.ssd import SSDTier       # native module: imported only when used
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with ArrayWriter(directory, name, shape, np.float32) as w:
            step = _block_rows(shape)
            for a in range(0, shape[0], step):
                w.write(init(a, min(shape[0], a + step)))
        return SSDTier(w.layout, writable=True, name=f"ssd:{name}")
    if kind == "pmem":
        if not pmem or ":" not in pmem:
            raise ValueError(f"table {name!r} on PMem needs a pool as PATH:SIZE, got {pmem!r}")
        from ..tiers.pmem import PMemPool
        path, _, size = pmem.rpartition(":")
        pool = PMemPool.open_or_create(path, parse_size(size))
        if name in pool.arrays():
            pool.delete_array(name)
        pool.create_array(name, shape, np.float32)
        tier = pool.tier(name, durable=True)
        tier.load(init)
        return tier
    raise ValueError(f"table tier {kind!r}: expected one of {TABLE_TIERS}")


def close_table(tier: Tier) -> None:
    """Close the tier, and the PMem pool it came from."""
    pool = getattr(tier, "pool", None)
    tier.close()
    if pool is not None:
        pool.close()


def _block_rows(shape: tuple[int, ...]) -> int:
    row_bytes = int(np.prod(shape[1:])) * 4
    return max(1, _WRITE_BLOCK_BYTES // row_bytes)
