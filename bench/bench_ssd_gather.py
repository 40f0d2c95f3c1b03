"""Random row gather from the SSD tier against np.memmap and the device floor (fio).

For each feature file (>= 8 GiB, rows of 512 B and 256 B) and each batch
(10k and 100k ids, uniform and power-law), with a cold page cache:
  - tiered: SSDTier.read_rows (O_DIRECT, io_uring, page dedup + coalescing)
  - np.memmap: fancy indexing on a fresh memmap after dropping the file's pages
  - floor: fio 4 KiB random read, io_uring, iodepth 32, O_DIRECT, same file
Prints a table and writes bench/out/ssd_gather.json.

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_ssd_gather.py
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (BENCH_DIR, drop_all_caches, drop_file_cache, fio_randread, machine,  # noqa: E402
                    print_table, write_json)

from tiered.format import ArrayLayout, ArrayWriter, read_array_layout  # noqa: E402
from tiered.tiers.ssd import PAGE_BYTES, SSDTier  # noqa: E402

GiB = 1 << 30


def make_features(root: Path, name: str, dim: int, dtype, nbytes: int) -> ArrayLayout:
    """A random feature array of `nbytes`, in one chunk file (so memmap and fio see one file)."""
    row_bytes = dim * np.dtype(dtype).itemsize
    rows = nbytes // row_bytes
    try:
        lay = read_array_layout(root, name)
        if lay.shape == (rows, dim) and all(p.stat().st_size == lay.chunk_bytes for p in lay.chunk_paths()):
            return lay
    except Exception:
        pass
    rng = np.random.default_rng(0)
    block = (256 << 20) // row_bytes
    with ArrayWriter(root, name, (rows, dim), dtype, chunk_bytes=2 * nbytes) as w:
        for s in range(0, rows, block):
            n = min(block, rows - s)
            w.write(rng.random((n, dim), dtype=np.float32).astype(dtype))
            print(f"\r  writing {name}: {100 * (s + n) / rows:5.1f}%", end="", flush=True)
    print()
    return w.layout


def draw_ids(kind: str, n: int, rows: int, rng: np.random.Generator, perm: np.ndarray) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, rows, n)
    # Power law: rank r drawn with p ~ 1 / r^1.1 (Zipf-like), ranks mapped through a fixed random
    # permutation so hot rows are scattered over the file (no help from id locality).
    ranks = np.minimum(rng.zipf(1.1, n) - 1, rows - 1)
    return perm[ranks]


def distinct_pages(ids: np.ndarray, lay: ArrayLayout) -> int:
    off = (ids % lay.chunk_rows) * lay.row_bytes + (ids // lay.chunk_rows) * (1 << 50)
    first = off // PAGE_BYTES
    last = (off + lay.row_bytes - 1) // PAGE_BYTES
    return len(np.unique(np.concatenate([first, last])))


def run_tiered(lay: ArrayLayout, ids: np.ndarray, queue_depth: int) -> dict:
    drop_file_cache(lay.chunk_paths()[0])
    with SSDTier(lay, queue_depth=queue_depth) as t:
        out = np.empty((len(ids), lay.shape[1]), lay.dtype)
        t0 = time.perf_counter()
        t.read_rows(ids, out)
        dt = time.perf_counter() - t0
        return {"seconds": dt, "device_bytes": t.stats.bytes_read, "backend": t.backend}


def run_memmap(lay: ArrayLayout, ids: np.ndarray) -> dict:
    path = lay.chunk_paths()[0]
    gc.collect()
    drop_file_cache(path)
    m = np.memmap(path, dtype=lay.dtype, mode="r", shape=lay.shape)
    t0 = time.perf_counter()
    m[ids]
    dt = time.perf_counter() - t0
    del m
    gc.collect()
    return {"seconds": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=BENCH_DIR / "ssd_gather")
    ap.add_argument("--gib", type=float, default=8.0, help="size of each feature file")
    ap.add_argument("--batches", default="10000,100000")
    ap.add_argument("--queue-depth", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fio-seconds", type=int, default=15)
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    print("cold page cache via drop_caches:", drop_all_caches())
    results = []
    floors = {}
    for name, dim, dtype in (("f32x128", 128, np.float32), ("f16x128", 128, np.float16)):
        lay = make_features(args.dir, name, dim, dtype, int(args.gib * GiB))
        path = lay.chunk_paths()[0]
        floor = fio_randread(path, seconds=args.fio_seconds)
        floors[name] = floor
        rng = np.random.default_rng(1)
        perm = rng.permutation(lay.num_rows)
        for kind in ("uniform", "powerlaw"):
            for n in batches:
                reps = [draw_ids(kind, n, lay.num_rows, rng, perm) for _ in range(args.repeats)]
                t = [run_tiered(lay, ids, args.queue_depth) for ids in reps]
                mm = run_memmap(lay, reps[0])
                secs = sum(r["seconds"] for r in t)
                dev = sum(r["device_bytes"] for r in t)
                pages = sum(distinct_pages(ids, lay) for ids in reps)
                row = {
                    "file": name, "row_bytes": lay.row_bytes, "ids": kind, "batch": n,
                    "file_GiB": lay.nbytes / GiB, "backend": t[0]["backend"],
                    "tiered_rows_s": n * args.repeats / secs,
                    "tiered_MBps": n * args.repeats * lay.row_bytes / secs / 1e6,
                    "tiered_page_iops": dev / PAGE_BYTES / secs,
                    "device_MBps": dev / secs / 1e6,
                    "bytes_over_distinct_pages": dev / (pages * PAGE_BYTES),
                    "memmap_rows_s": n / mm["seconds"],
                    "memmap_MBps": n * lay.row_bytes / mm["seconds"] / 1e6,
                    "speedup_vs_memmap": (n * args.repeats / secs) / (n / mm["seconds"]),
                    "fio_iops": floor["iops"] if floor else None,
                    "iops_vs_floor": (dev / PAGE_BYTES / secs) / floor["iops"] if floor else None,
                }
                results.append(row)
                print(f"  {name} {kind:8s} {n:>7d}: tiered {row['tiered_rows_s']:>10,.0f} rows/s, "
                      f"memmap {row['memmap_rows_s']:>10,.0f} rows/s", flush=True)
    print()
    for name, f in floors.items():
        if f:
            print(f"floor {name}: fio 4 KiB randread io_uring QD{f['iodepth']} O_DIRECT: "
                  f"{f['iops']:,.0f} IOPS, {f['MBps']:.0f} MB/s")
        else:
            print(f"floor {name}: fio not installed (apt-get install fio)")
    print()
    print_table(results, [
        ("file", "file", "s"), ("ids", "ids", "s"), ("batch", "batch", "d"),
        ("tiered_rows_s", "tiered rows/s", ",.0f"), ("tiered_MBps", "tiered MB/s", ".1f"),
        ("tiered_page_iops", "page IOPS", ",.0f"), ("iops_vs_floor", "IOPS/floor", ".2f"),
        ("memmap_rows_s", "memmap rows/s", ",.0f"), ("speedup_vs_memmap", "x memmap", ".2f"),
        ("bytes_over_distinct_pages", "bytes/pages", ".3f")])
    path = write_json("ssd_gather", {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                                     "floors": floors, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
