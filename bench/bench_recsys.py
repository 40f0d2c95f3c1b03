"""GNN recommender epochs with the embedding table on the SSD: Belady vs LRU vs all in DRAM,
and epoch time against depth (1..6 layers).

A synthetic user-item graph (tiered-convert synthetic-link, R-MAT with planted
groups) whose learnable table (embeddings + SparseAdam state, 3 x dim float32
per row) is at least 4x the DRAM budget given to the table's cache. Each
configuration trains one epoch of BPR (LightGCN, sampled fanouts) from the same
seed; the epoch time, the share of the table one batch touches, the table's
cache hit rate and its bytes read from and written to the SSD are measured in
the run. Belady and LRU plan the same
batches (the sampled batches depend only on the seed), so their rows loaded
compare directly. Prints tables and writes bench/out/recsys.json.

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_recsys.py
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, machine, print_table, write_json  # noqa: E402

from tiered.convert import ConvertOptions, generate_synthetic_links  # noqa: E402
from tiered.dataset import open_dataset  # noqa: E402
from tiered.recsys import LinkTrainer, make_link_config  # noqa: E402
from tiered.units import format_size, parse_size  # noqa: E402

COLUMNS = [("config", "config", "s"), ("layers", "layers", "d"), ("epoch_s", "epoch s", ".1f"),
           ("batches", "batches", "d"), ("share", "rows/batch", ".3f"), ("hit_rate", "hit rate", ".3f"),
           ("loads", "rows read", ",d"), ("writebacks", "rows written", ",d"),
           ("read_MB", "MB read", ".0f"), ("write_MB", "MB written", ".0f"),
           ("read_s", "read s", ".1f"), ("write_s", "write s", ".1f"), ("loss", "loss", ".4f")]


def dataset(args) -> Path:
    """The synthetic user-item graph, generated once per parameter set."""
    path = BENCH_DIR / f"ui-{args.users}-{args.items}-{args.interactions}"
    try:
        ds = open_dataset(path)
        if (ds.num_users, ds.num_items) == (args.users, args.items):
            return path
    except (FileNotFoundError, ValueError):
        pass
    print(f"generating {path} ...", flush=True)
    generate_synthetic_links(path, users=args.users, items=args.items,
                             interactions=args.interactions, groups=64, seed=0,
                             options=ConvertOptions(progress=False, overwrite=True))
    return path


def one_epoch(path: Path, args, label: str, layers: int, on: str, cache: str) -> dict:
    """Train epoch 0 of one configuration; its time and the table's traffic."""
    cfg = make_link_config(dataset=str(path), layers=layers, dim=args.dim,
                           fanouts=[args.fanout] * layers, batch_size=args.batch_size, lr=0.005,
                           embeddings_on=on, cache=cache, cache_size=args.dram_budget,
                           superbatch=args.superbatch, table_dir=str(args.table_dir),
                           progress=False, seed=0)
    t0 = time.perf_counter()
    with LinkTrainer(cfg) as t:
        setup = time.perf_counter() - t0
        table_bytes = t.table.backing.capacity_bytes
        r = t.train_epoch(0)
        st = r["table"]
        row = {"config": label, "layers": layers, "epoch_s": r["seconds"], "setup_s": setup,
               "batches": st["batches"], "hit_rate": st["hit_rate"], "loads": st["loads"],
               "writebacks": st["writebacks"], "read_MB": st["bytes_read"] / 1e6,
               "write_MB": st["bytes_written"] / 1e6, "read_s": st["read_seconds"],
               "write_s": st["write_seconds"], "loss": r["loss"], "split": r["split"],
               "cache_rows": t.table.capacity, "table_bytes": table_bytes,
               "rows_per_batch": st["rows"] / max(st["batches"], 1),
               "share": st["rows"] / max(st["batches"], 1) / t.num_nodes}
    print(f"  {label:14s} layers {layers}: {row['epoch_s']:.1f} s, hit {row['hit_rate']:.3f}, "
          f"{row['read_MB']:.0f} MB read, {row['write_MB']:.0f} MB written", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=300_000)
    p.add_argument("--items", type=int, default=150_000)
    p.add_argument("--interactions", type=int, default=300_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--fanout", type=int, default=5, help="neighbours per hop at every layer")
    p.add_argument("--superbatch", type=int, default=32)
    p.add_argument("--dram-budget", default="64MiB", help="DRAM for the table's cache")
    p.add_argument("--layers", type=int, default=3, help="depth of the policy comparison")
    p.add_argument("--depths", default="1,2,3,4,5,6")
    p.add_argument("--table-dir", type=Path, default=BENCH_DIR / "recsys-tables")
    args = p.parse_args()
    args.table_dir.mkdir(parents=True, exist_ok=True)
    path = dataset(args)
    ds = open_dataset(path)
    table_bytes = ds.num_nodes * 3 * args.dim * 4
    budget = parse_size(args.dram_budget)
    print(f"{path}: {ds.num_users:,} users, {ds.num_items:,} items, {ds.num_edges // 2:,} train "
          f"interactions; table {format_size(table_bytes)} = {table_bytes / budget:.1f}x the "
          f"DRAM budget of {format_size(budget)}")
    if table_bytes < 4 * budget:
        raise SystemExit("the table must be >= 4x the DRAM budget: raise --users/--items or "
                         "lower --dram-budget")
    policies = []
    for label, on, cache in (("dram", "dram", "none"), ("ssd belady", "ssd", "belady"),
                             ("ssd lru", "ssd", "lru")):
        policies.append(one_epoch(path, args, label, args.layers, on, cache))
    print()
    print_table(policies, COLUMNS)
    bel, lru = policies[1], policies[2]
    print(f"LRU / Belady: rows read {lru['loads'] / max(bel['loads'], 1):.2f}, rows written "
          f"{lru['writebacks'] / max(bel['writebacks'], 1):.2f}, epoch time "
          f"{lru['epoch_s'] / bel['epoch_s']:.2f}; SSD Belady / DRAM epoch time "
          f"{bel['epoch_s'] / policies[0]['epoch_s']:.2f}")
    depth = []
    for layers in (int(x) for x in args.depths.split(",")):
        depth.append(one_epoch(path, args, "ssd belady", layers, "ssd", "belady"))
    print()
    print_table(depth, COLUMNS)
    out = write_json("recsys", {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                                "dataset": str(path), "table_bytes": table_bytes,
                                "dram_budget": budget, "policies": policies, "depth": depth})
    shutil.rmtree(args.table_dir, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
