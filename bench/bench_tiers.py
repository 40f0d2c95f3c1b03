"""Row gather from the PMem, DRAM and SSD tiers, for the same ids.

One random feature array (default 4 GiB: 8M rows of 512 B) is written as a
dataset array (the SSD tier reads it with O_DIRECT), loaded whole into DRAM
(DRAMTier) and into a libpmemobj pool file next to it (PMemTier). Each tier then
gathers the same batches of uniformly random ids:

  - pmem warm: the pool's pages are in the page cache and mapped;
  - pmem cold: before each batch the pool is closed, the page cache dropped
    (echo 1 > /proc/sys/vm/drop_caches as root, else posix_fadvise DONTNEED)
    and the pool reopened, so every touched page comes from the disk;
  - dram: numba gather from process memory;
  - ssd: SSDTier (O_DIRECT, io_uring, page dedup), cold by construction.

Writes of the same ids are timed too: PMem in transactions (durable) and as plain
copies (scratch, as the PMem cache writes), and DRAM. An emulated pool is synced to
disk before each kind, so its pages are clean and the first write to each takes a
write fault (as after the kernel's writeback); the same rows are then written again
with their pages dirty (as rows rewritten every step). Without real persistent
memory (pmem_is_pmem false) the pool is a file in the page cache, which the output
says, so the figures are not mistaken for Optane's. Prints a table and writes
bench/out/tiers.json.

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_tiers.py
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, drop_all_caches, drop_file_cache, machine, print_table, write_json  # noqa: E402

from tiered.format import ArrayWriter  # noqa: E402
from tiered.tiers.dram import DRAMTier  # noqa: E402
from tiered.tiers.pmem import PMemPool, array_pool_bytes, pool_size_for, tx_headroom  # noqa: E402
from tiered.tiers.ssd import SSDTier  # noqa: E402
from tiered.units import format_size, parse_size  # noqa: E402


def make_array(root: Path, rows: int, dim: int):
    rng = np.random.default_rng(0)
    block = max(1, (256 << 20) // (dim * 4))
    with ArrayWriter(root, "features", (rows, dim), np.float32, chunk_bytes=1 << 30) as w:
        for s in range(0, rows, block):
            w.write(rng.random((min(block, rows - s), dim), dtype=np.float32))
    return w.layout


def timed(fn, batches: list[tuple]) -> tuple[float, int]:
    """Seconds to run fn(ids, ...) over every batch, and rows moved."""
    t0 = time.perf_counter()
    for args in batches:
        fn(*args)
    return time.perf_counter() - t0, sum(len(args[0]) for args in batches)


def reader(tier, out: np.ndarray):
    """tier.read_rows into a preallocated buffer: times the gather, not the allocation."""
    return lambda ids: tier.read_rows(ids, out)


def row(tier: str, case: str, seconds: float, rows: int, row_bytes: int, batches: int) -> dict:
    return {"tier": tier, "case": case, "batches": batches, "rows": rows, "seconds": seconds,
            "rows_per_s": rows / seconds, "MBps": rows * row_bytes / seconds / 1e6,
            "us_per_batch": seconds / batches * 1e6}


def drop(pool_path: Path) -> str:
    if drop_all_caches():
        return "drop_caches"
    drop_file_cache(pool_path)
    return "fadvise"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="4GiB", help="bytes of the feature array")
    ap.add_argument("--dim", type=int, default=128, help="float32 columns per row")
    ap.add_argument("--batch", type=int, default=16384, help="ids per gather")
    ap.add_argument("--batches", type=int, default=20, help="batches per warm measurement")
    ap.add_argument("--cold-batches", type=int, default=5,
                    help="the first N batches again, each after a drop, when cold")
    ap.add_argument("--dir", type=Path, default=BENCH_DIR / "tiers")
    ap.add_argument("--keep", action="store_true", help="keep the array and the pool afterwards")
    args = ap.parse_args()

    row_bytes = args.dim * 4
    rows = parse_size(args.size) // row_bytes
    args.dir.mkdir(parents=True, exist_ok=True)
    pool_path = args.dir / "tiers.pool"
    need = rows * row_bytes + pool_size_for(array_pool_bytes(rows, row_bytes) + tx_headroom())
    free = shutil.disk_usage(args.dir).free
    if need > free * 0.9:
        sys.exit(f"{args.dir}: needs {format_size(need)} of disk, {format_size(free)} free")

    rng = np.random.default_rng(1)
    warm = [(rng.integers(0, rows, args.batch),) for _ in range(args.batches)]
    cold = warm[:args.cold_batches]                   # the same ids, read after a drop
    writes = [np.unique(ids) for (ids,) in warm[:10]]
    writes = [(ids, np.ones((len(ids), args.dim), np.float32)) for ids in writes]
    results = []
    try:
        print(f"writing {format_size(rows * row_bytes)} ({rows} rows x {row_bytes} B) to {args.dir}")
        layout = make_array(args.dir, rows, args.dim)

        dram = DRAMTier(layout.read_all(), pin=False)
        if pool_path.exists():
            pool_path.unlink()
        pool = PMemPool.create(pool_path, pool_size_for(array_pool_bytes(rows, row_bytes)
                                                        + tx_headroom()))
        pool.create_array("features", (rows, args.dim), np.float32)
        t0 = time.perf_counter()
        pool.tier("features").load(dram.array)
        load_s = time.perf_counter() - t0
        pool.sync()          # write back now, or the kernel's writeback stalls the timed writes
        os.sync()
        emulated = not pool.is_pmem
        print(f"pool {pool_path}: {format_size(pool.size)}, is_pmem={pool.is_pmem}, "
              f"persistence={pool.persistence}; load {load_s:.1f} s"
              + (" (EMULATED: an ordinary file, not persistent memory)" if emulated else ""))

        tier = pool.tier("features")
        out = np.empty((args.batch, args.dim), np.float32)   # one reused buffer, as the executor's
        for (ids,) in warm[:2]:                       # compile kernels, fault the mappings in
            dram.read_rows(ids, out)
            tier.read_rows(ids, out)
        results.append(row("dram", "warm", *timed(reader(dram, out), warm), row_bytes, len(warm)))
        results.append(row("pmem", "warm page cache" if emulated else "warm",
                           *timed(reader(tier, out), warm), row_bytes, len(warm)))

        for label, durable in (("transactional", True), ("plain copy", False)):
            tier.close()
            tier = pool.tier("features", durable=durable)
            tier.write_rows(*writes[0])     # compile the batch-sized kernel (parallel when plain)
            pool.sync()                 # pages clean: the first write to each one faults
            for pages in ("clean", "dirty"):          # the same rows again: pages now dirty
                results.append(row("pmem", f"write {label}, {pages} pages",
                                   *timed(tier.write_rows, writes), row_bytes, len(writes)))
        dram.write_rows(*writes[0])                   # compile the parallel scatter
        results.append(row("dram", "write", *timed(dram.write_rows, writes), row_bytes, len(writes)))

        how, seconds, moved = None, 0.0, 0
        for batch in cold:
            pool.close()
            how = drop(pool_path)
            pool = PMemPool.open(pool_path)
            s, n = timed(reader(pool.tier("features"), out), [batch])
            seconds, moved = seconds + s, moved + n
        results.append(row("pmem", f"cold page cache ({how})" if emulated else "cold",
                           seconds, moved, row_bytes, len(cold)))

        with SSDTier(layout) as ssd:
            ssd.read_rows(cold[0][0][:100])
            results.append(row("ssd", f"O_DIRECT {ssd.backend}", *timed(reader(ssd, out), warm),
                               row_bytes, len(warm)))
        persistence, is_pmem = pool.persistence, pool.is_pmem
        pool.close()
    finally:
        if not args.keep:
            shutil.rmtree(args.dir / "features", ignore_errors=True)
            if pool_path.exists():
                pool_path.unlink()

    print()
    if emulated:
        print(f"NOTE: PMem is EMULATED by a file on this disk (pmem_is_pmem is false; persistence "
              f"'{persistence}'): the pmem rows measure the page cache and the disk, not Optane.")
    print(f"{args.batch} random ids per batch, rows of {row_bytes} B, array {format_size(rows * row_bytes)}")
    print_table(results, [("tier", "tier", ""), ("case", "case", ""), ("batches", "batches", "d"),
                          ("rows_per_s", "rows/s", ",.0f"), ("MBps", "MB/s", ",.1f"),
                          ("us_per_batch", "us/batch", ",.0f")])
    out = write_json("tiers", {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows, "row_bytes": row_bytes, "pmem_is_pmem": is_pmem,
                               "pmem_emulated": emulated, "pmem_persistence": persistence,
                               "pmem_load_seconds": load_s, "results": results})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
