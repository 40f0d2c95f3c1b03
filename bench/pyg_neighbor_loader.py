"""PyG's sampling speed on a graph given as CSC .npy files; run inside the PyG venv
(bench/setup_pyg.sh) by bench/bench_inspector.py. Prints one JSON object.

    python pyg_neighbor_loader.py INDPTR.npy INDICES.npy SEEDS.npy 15,10,5 1024 [--mmap] [--probe]

SEEDS.npy holds the seeds of the batches, batch after batch (a multiple of the
batch size). Times torch_geometric's NeighborLoader (what users run) and the raw
torch_sparse.neighbor_sample call underneath it (its best case).

--mmap opens INDICES.npy (int64, as torch_sparse needs) as an np.memmap instead of
reading it: the OS page cache holds what it can, which is how PyG runs on a graph
larger than memory (Ginex's "PyG+"); the caller sets the memory budget with a
cgroup. --probe builds everything, prints the process RSS and stops (the caller
adds it to the budget). With --mmap only the loader is timed (the raw call reads
the same pages).
"""
import argparse
import json
import resource
import time

import numpy as np
import torch
import torch_geometric
import torch_sparse
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_sparse import SparseTensor


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("indptr", "indices", "seeds", "fanouts"):
        ap.add_argument(name)
    ap.add_argument("batch", type=int)
    ap.add_argument("--mmap", action="store_true")
    ap.add_argument("--probe", action="store_true")
    a = ap.parse_args()
    fanouts = [int(f) for f in a.fanouts.split(",")]
    indptr = torch.from_numpy(np.load(a.indptr).astype(np.int64))
    if a.mmap:
        mm = np.load(a.indices, mmap_mode="c")
        if mm.dtype != np.int64:
            raise SystemExit(f"{a.indices}: --mmap needs int64 indices, found {mm.dtype}")
        col = torch.from_numpy(mm)
    else:
        col = torch.from_numpy(np.load(a.indices).astype(np.int64))
    seeds = torch.from_numpy(np.load(a.seeds).astype(np.int64))
    n = len(indptr) - 1
    adj_t = SparseTensor(rowptr=indptr, col=col, sparse_sizes=(n, n), is_sorted=True,
                         trust_data=True)
    data = Data(adj_t=adj_t, num_nodes=n)
    out = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
           "torch_sparse": torch_sparse.__version__, "threads": torch.get_num_threads(),
           "mmap": a.mmap}
    loader = NeighborLoader(data, num_neighbors=fanouts, batch_size=a.batch, input_nodes=seeds,
                            shuffle=False)
    if a.probe:
        out["rss"] = rss_bytes()
        print(json.dumps(out))
        return
    it = iter(loader)
    next(it)                                    # warm-up: builds the CSC view once
    nodes = edges = batches = 0
    t0 = time.perf_counter()
    for b in it:
        nodes += b.num_nodes
        edges += b.num_edges
        batches += 1
    dt = time.perf_counter() - t0
    out["loader"] = {"batches": batches, "seconds": dt, "nodes": nodes, "edges": edges,
                     "nodes_per_s": nodes / dt, "edges_per_s": edges / dt}
    out["rss_after"] = rss_bytes()
    if not a.mmap:
        colptr, row, _ = adj_t.csr()
        sample = torch.ops.torch_sparse.neighbor_sample
        nodes = edges = 0
        t0 = time.perf_counter()
        for s in range(a.batch, len(seeds), a.batch):
            node, _, _, edge = sample(colptr, row, seeds[s:s + a.batch], fanouts, False, True)
            nodes += node.numel()
            edges += edge.numel()
        dt = time.perf_counter() - t0
        out["raw"] = {"batches": len(range(a.batch, len(seeds), a.batch)), "seconds": dt,
                      "nodes": nodes, "edges": edges, "nodes_per_s": nodes / dt,
                      "edges_per_s": edges / dt}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
