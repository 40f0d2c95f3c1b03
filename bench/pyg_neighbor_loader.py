"""PyG's sampling speed on a graph given as CSC .npy files; run inside the PyG venv
(bench/setup_pyg.sh) by bench/bench_inspector.py. Prints one JSON object.

    python pyg_neighbor_loader.py INDPTR.npy INDICES.npy SEEDS.npy 15,10,5 1024

SEEDS.npy holds the seeds of the batches, batch after batch (a multiple of the
batch size). Times torch_geometric's NeighborLoader (what users run) and the raw
torch_sparse.neighbor_sample call underneath it (its best case).
"""
import json
import sys
import time

import numpy as np
import torch
import torch_geometric
import torch_sparse
from torch_geometric.data import Data
from torch_geometric.loader import NeighborLoader
from torch_sparse import SparseTensor


def main() -> None:
    indptr_path, indices_path, seeds_path, fanouts, batch = sys.argv[1:6]
    fanouts = [int(f) for f in fanouts.split(",")]
    batch = int(batch)
    indptr = torch.from_numpy(np.load(indptr_path).astype(np.int64))
    col = torch.from_numpy(np.load(indices_path).astype(np.int64))
    seeds = torch.from_numpy(np.load(seeds_path).astype(np.int64))
    n = len(indptr) - 1
    adj_t = SparseTensor(rowptr=indptr, col=col, sparse_sizes=(n, n), is_sorted=True,
                         trust_data=True)
    data = Data(adj_t=adj_t, num_nodes=n)
    out = {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
           "torch_sparse": torch_sparse.__version__, "threads": torch.get_num_threads()}

    loader = NeighborLoader(data, num_neighbors=fanouts, batch_size=batch, input_nodes=seeds,
                            shuffle=False)
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

    colptr, row, _ = adj_t.csr()
    sample = torch.ops.torch_sparse.neighbor_sample
    nodes = edges = 0
    t0 = time.perf_counter()
    for s in range(batch, len(seeds), batch):
        node, _, _, edge = sample(colptr, row, seeds[s:s + batch], fanouts, False, True)
        nodes += node.numel()
        edges += edge.numel()
    dt = time.perf_counter() - t0
    out["raw"] = {"batches": len(range(batch, len(seeds), batch)), "seconds": dt, "nodes": nodes,
                  "edges": edges, "nodes_per_s": nodes / dt, "edges_per_s": edges / dt}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
