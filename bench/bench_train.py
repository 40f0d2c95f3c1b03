"""End-to-end training benchmark: tiered's Belady plan vs two mmap baselines, one memory limit.

GraphSAGE (3 layers, fanouts 15,10,5, batch 1024) trains one epoch on a synthetic graph
whose feature file is >= 4x the memory budget. Each mode runs in its own process, inside a
cgroup v1 memory limit (memory.limit_in_bytes = --budget, page cache included), started
with a cold page cache (echo 1 > /proc/sys/vm/drop_caches):

  tiered   features on the SSD tier, Belady cache in what the budget leaves (the engine's
           DRAM budget is the limit minus --overhead for Python, torch and activations)
  mmap     (b) tiered's sampler and pipeline, features gathered from np.memmap, no cache:
           isolates the storage engine's share
  mmap-random  (b) with madvise(MADV_RANDOM): no readahead, one page per missing row
  pyg      (a) Ginex's "PyG+": torch_geometric NeighborLoader over data.x = np.memmap,
           PyG's GraphSAGE; runs in the venv of bench/setup_pyg.sh (/work/bigdata/pygvenv)
  cache25  tiered with a 25% DRAM cache (limit raised to fit it)
  dram     everything in DRAM, no limit: the in-memory reference

A mode stops after --time-cap seconds; its epoch time is then extrapolated from the batches
done (marked in the table). Prints the table and each mode's time split; writes
bench/out/bench_train.json. Heavy: run it as

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_train.py --data DIR

DIR comes from `tiered-convert synthetic` with --chunk-size larger than the feature array
(PyG+ memory-maps one file), e.g. 32M nodes x 128 float32 = 16 GiB for a 4 GiB budget.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from common import drop_all_caches, machine, print_table, write_json  # noqa: E402

PYG_PYTHON = os.environ.get("PYG_PYTHON", "/work/bigdata/pygvenv/bin/python")
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
GiB = 1 << 30


# ---- workers (run in the measured process) ---------------------------------------------------
def _result(batches: int, total: int, seconds: float, losses: list[float], extra: dict) -> dict:
    per = seconds / max(batches, 1)
    return {"batches": batches, "batches_per_epoch": total, "seconds": seconds,
            "epoch_seconds": per * total, "extrapolated": batches < total,
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **extra}


def worker_tiered(args) -> dict:
    """tiered, mmap, cache25 and dram: tiered's loader, the same loop and model."""
    import mmap

    import numpy as np
    import torch
    import torch.nn.functional as F

    from tiered.executor import Executor
    from tiered.models import GraphSAGE
    from tiered.plan import make_policy
    from tiered.tiers.base import Tier, TierHints
    from tiered.train import NodeLoader, make_config

    torch.manual_seed(0)
    kw = dict(dataset=args.data, model="sage", fanouts=args.fanouts, batch_size=args.batch_size,
              hidden=args.hidden, lr=0.003, epochs=1, superbatch=args.superbatch, prefetch=1,
              progress=False, seed=0)
    mode = args.worker
    if mode == "tiered":
        kw.update(features_on="ssd", cache="belady", dram_budget=args.engine_budget)
    elif mode == "cache25":
        kw.update(features_on="ssd", cache="belady", cache_size="25%",
                  dram_budget=args.engine_budget)
    elif mode.startswith("mmap"):
        kw.update(features_on="ssd", cache="none", dram_budget=args.engine_budget)
    else:
        kw.update(features_on="dram", dram_budget=args.engine_budget)
    t0 = time.perf_counter()
    loader = NodeLoader(make_config(**kw))
    if mode.startswith("mmap"):
        class MmapTier(Tier):
            """Rows gathered from np.memmap of the chunk files: page faults, no cache."""

            def __init__(self, layout, random: bool):
                super().__init__("mmap:features", layout.num_rows, layout.row_shape, layout.dtype)
                self.maps = layout.memmap_chunks()
                self.chunk_rows = layout.chunk_rows
                if random:                  # no readahead: one page per missing row
                    for m in self.maps:
                        m._mmap.madvise(mmap.MADV_RANDOM)

            @property
            def hints(self):
                return TierHints(kind="mmap")

            def _read(self, ids, out):
                if len(self.maps) == 1:
                    out[:] = self.maps[0][ids]
                else:
                    c = ids // self.chunk_rows
                    for k in np.unique(c):
                        sel = np.flatnonzero(c == k)
                        out[sel] = self.maps[k][ids[sel] - k * self.chunk_rows]
                return out.nbytes

            def _write(self, ids, rows):
                raise PermissionError("read-only")

        loader.policy = make_policy("none", 0, loader.num_nodes)
        tier = MmapTier(loader.ds.layout("features"), random=mode == "mmap-random")
        loader.executor = Executor(tier, 0, loader.labels,
                                   indptr=loader.indptr, prefetch=1)
    setup = time.perf_counter() - t0
    model = GraphSAGE(loader.ds.feature_dim, args.hidden, loader.ds.num_classes,
                      len(args.fanouts), dropout=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    total = loader.num_batches()
    epochs = []
    for e in range(args.epochs if not mode.startswith("mmap") else 1):
        loader.executor.reset_stats()
        losses, compute, idle, done = [], 0.0, 0.0, 0
        t_start = t_wait = time.perf_counter()
        it = loader.epoch(e)
        for batch in it:
            t1 = time.perf_counter()
            idle += t1 - t_wait
            opt.zero_grad()
            loss = F.cross_entropy(model(batch.x, batch.blocks), batch.y.long())
            loss.backward()
            opt.step()
            losses.append(float(loss))
            done += 1
            t_wait = time.perf_counter()
            compute += t_wait - t1
            if t_wait - t_start > args.time_cap:
                break
        it.close()
        seconds = time.perf_counter() - t_start
        st = loader.executor.stats.as_dict(loader.executor.level_names)
        st["seconds"].update(compute=compute, idle=idle)
        epochs.append(_result(done, total, seconds, losses, {
            "hit_rate": st["hit_rate"], "bytes_read": st["bytes_read"], "rows": st["rows"],
            "split": st["seconds"], "tiers": st["tiers"]}))
    loader.close()
    out = dict(epochs[0])
    out.update(setup_seconds=setup, placement=loader.placement.describe(), epochs=epochs)
    if len(epochs) > 1:
        out.update(warm_epoch_seconds=epochs[-1]["epoch_seconds"],
                   warm_hit_rate=epochs[-1]["hit_rate"], warm_split=epochs[-1]["split"])
    return out


def worker_pyg(args) -> dict:
    """Ginex's PyG+: NeighborLoader with data.x a np.memmap, PyG's GraphSAGE."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch_geometric.data import Data
    from torch_geometric.loader import NeighborLoader
    from torch_geometric.nn import GraphSAGE
    from torch_sparse import SparseTensor

    from tiered.format import read_array_layout      # numpy only: no numba needed here

    torch.manual_seed(0)
    t0 = time.perf_counter()
    root = Path(args.data)
    attrs = json.loads((root / "zarr.json").read_text())["attributes"]
    n, dim, classes = attrs["num_nodes"], attrs["feature_dim"], attrs["num_classes"]
    lay = read_array_layout(root, "features")
    if lay.num_chunks != 1:
        raise SystemExit(f"{lay.directory}: PyG+ needs the features in one file "
                         f"({lay.num_chunks} chunks); convert with a larger --chunk-size")
    x = torch.from_numpy(np.memmap(lay.chunk_path(0), dtype=lay.dtype, mode="r",
                                   shape=lay.shape))
    load = lambda name: read_array_layout(root, name).read_all()  # noqa: E731
    indptr = torch.from_numpy(load("indptr"))
    indices = torch.from_numpy(load("indices").astype(np.int64))
    adj_t = SparseTensor(rowptr=indptr, col=indices, sparse_sizes=(n, n), is_sorted=True,
                         trust_data=True)
    data = Data(x=x, y=torch.from_numpy(load("labels")), adj_t=adj_t, num_nodes=n)
    train = torch.from_numpy(load("train_idx").astype(np.int64))
    loader = NeighborLoader(data, num_neighbors=args.fanouts, batch_size=args.batch_size,
                            input_nodes=train, shuffle=True)
    model = GraphSAGE(dim, args.hidden, num_layers=len(args.fanouts), out_channels=classes,
                      dropout=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    setup = time.perf_counter() - t0
    total = len(loader)
    losses, compute, wait, done = [], 0.0, 0.0, 0
    t_start = t_wait = time.perf_counter()
    for batch in loader:
        t1 = time.perf_counter()
        wait += t1 - t_wait
        opt.zero_grad()
        out = model(batch.x, batch.adj_t)[:batch.batch_size]
        loss = F.cross_entropy(out, batch.y[:batch.batch_size].long())
        loss.backward()
        opt.step()
        losses.append(float(loss))
        done += 1
        t_wait = time.perf_counter()
        compute += t_wait - t1
        if t_wait - t_start > args.time_cap:
            break
    seconds = time.perf_counter() - t_start
    return _result(done, total, seconds, losses,
                   {"setup_seconds": setup, "split": {"sample+gather": wait, "compute": compute}})


# ---- the driver -----------------------------------------------------------------------------
def run_mode(mode: str, args, limit: int | None) -> dict:
    """Run one mode in a child process, inside a memory cgroup of `limit` bytes (None: none)."""
    cg = None
    if limit is not None:
        cg = CGROUP_ROOT / f"tiered-bench-{mode}-{os.getpid()}"
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(limit))
    python = PYG_PYTHON if mode == "pyg" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--worker", mode, "--data", args.data,
           "--fanouts", ",".join(map(str, args.fanouts)), "--batch-size", str(args.batch_size),
           "--hidden", str(args.hidden), "--superbatch", str(args.superbatch),
           "--time-cap", str(args.time_cap), "--epochs", str(args.epochs),
           "--engine-budget", str(args.engine_budget_for(mode))]
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def enter_cgroup():
        if cg is not None:
            (cg / "tasks").write_text(str(os.getpid()))

    cold = drop_all_caches()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=enter_cgroup)
    wall = time.perf_counter() - t0
    out = {"mode": mode, "limit": limit, "cold_cache": cold, "wall_seconds": wall,
           "returncode": proc.returncode}
    if cg is not None:
        out["cgroup_max_usage"] = int((cg / "memory.max_usage_in_bytes").read_text())
        out["cgroup_failcnt"] = int((cg / "memory.failcnt").read_text())
        cg.rmdir()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        out.update(json.loads(lines[-1]))
    else:
        out["error"] = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/bigdata/bench/train32m")
    ap.add_argument("--budget", default=None, help="memory limit in bytes/units [features / 4]")
    ap.add_argument("--overhead", default="1.5GiB",
                    help="part of the limit left to Python, torch and activations")
    ap.add_argument("--modes", default="tiered,mmap,pyg,cache25,dram")
    ap.add_argument("--fanouts", default="15,10,5")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--superbatch", type=int, default=16)
    ap.add_argument("--time-cap", type=float, default=900.0)
    ap.add_argument("--epochs", type=int, default=2,
                    help="epochs of the tiered modes: the first starts with an empty cache")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--engine-budget", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.fanouts = [int(f) for f in args.fanouts.split(",")]
    return args


def main() -> None:
    args = parse_args()
    if args.worker:
        fn = worker_pyg if args.worker == "pyg" else worker_tiered
        print(json.dumps(fn(args)))
        return
    from tiered.memory import available_memory
    from tiered.units import format_size, parse_size
    meta = json.loads((Path(args.data) / "zarr.json").read_text())["attributes"]
    feat_bytes = meta["num_nodes"] * meta["feature_dim"] * (2 if meta["feature_dtype"] == "float16" else 4)
    limit = parse_size(args.budget) if args.budget else feat_bytes // 4
    overhead = parse_size(args.overhead)
    limits = {"tiered": limit, "mmap": limit, "mmap-random": limit, "pyg": limit,
              "cache25": limit + feat_bytes // 4, "dram": None}
    args.engine_budget_for = lambda m: (limits[m] or (feat_bytes + 8 * GiB)) - overhead
    print(f"{args.data}: {meta['num_nodes']:,} nodes, {meta['num_edges']:,} edges, features "
          f"{format_size(feat_bytes)}; memory limit {format_size(limit)} "
          f"(features / limit = {feat_bytes / limit:.2f})", flush=True)
    rows = []
    for mode in args.modes.split(","):
        if mode == "dram" and available_memory() < feat_bytes + 4 * GiB:
            rows.append({"mode": mode, "limit": None, "error": f"skipped: needs "
                         f"{format_size(feat_bytes + 4 * GiB)} of available memory, "
                         f"{format_size(available_memory())} here"})
            print(rows[-1]["error"], flush=True)
            continue
        r = run_mode(mode, args, limits[mode])
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items() if k not in ("tiers", "epochs")}), flush=True)
    base = {r["mode"]: r.get("epoch_seconds") for r in rows}
    for r in rows:
        t = r.get("epoch_seconds")
        r["epoch"] = "-" if t is None else f"{t:.1f}{'*' if r.get('extrapolated') else ''}"
        r["vs_tiered"] = "-" if t is None or not base.get("tiered") else f"{t / base['tiered']:.2f}x"
        w = r.get("warm_epoch_seconds")
        r["warm"] = "-" if w is None else f"{w:.1f}"
        r["warm_hit"] = f"{r['warm_hit_rate']:.3f}" if "warm_hit_rate" in r else "-"
        r["limit_h"] = format_size(r["limit"]) if r["limit"] else "none"
        r["peak_h"] = format_size(r.get("cgroup_max_usage") or r.get("peak_rss") or 0)
        r["hit"] = f"{r['hit_rate']:.3f}" if "hit_rate" in r else "-"
        r["read_h"] = format_size(r["bytes_read"]) if "bytes_read" in r else "-"
    print()
    print_table(rows, [("mode", "mode", ""), ("limit_h", "limit", ""), ("batches", "batches", ""),
                       ("epoch", "epoch 1 s", ""), ("vs_tiered", "vs tiered", ""),
                       ("hit", "hit rate", ""), ("read_h", "read", ""), ("warm", "last epoch s", ""),
                       ("warm_hit", "its hit rate", ""), ("peak_h", "peak mem", "")])
    print("(* extrapolated from the batches done within --time-cap; epoch 1 starts with cold page "
          "cache and empty DRAM cache; 'last epoch' continues with the cache it left)")
    for r in rows:
        for key, what in (("split", "epoch 1"), ("warm_split", "last epoch")):
            if key in r:
                print(f"{r['mode']:8} {what} time split (s): " +
                      ", ".join(f"{k} {v:.1f}" for k, v in r[key].items()))
        if "error" in r:
            print(f"{r['mode']:8} failed: {r['error']}")
    for m in ("mmap", "mmap-random", "pyg"):
        if base.get(m) and base.get("tiered"):
            print(f"speedup of tiered over {m}: {base[m] / base['tiered']:.2f}x (goal >= 3)")
    warm = {r["mode"]: r.get("warm_epoch_seconds") for r in rows}
    if base.get("cache25") and base.get("dram"):
        print(f"25% cache vs all in DRAM, first epoch: {base['cache25'] / base['dram']:.2f}x"
              + (f", last epoch: {warm['cache25'] / warm['dram']:.2f}x"
                 if warm.get("cache25") and warm.get("dram") else "") + " (goal <= 1.3)")
    write_json("bench_train", {"machine": machine(), "args": {k: v for k, v in vars(args).items()
                                                              if k != "engine_budget_for"},
                               "features_bytes": feat_bytes, "limit": limit, "results": rows})


if __name__ == "__main__":
    main()
