"""Inspector benchmark: sampling throughput, plan cost, rows loaded per cache policy, DRAM per node.

Run under the machine-wide lock (it uses both cores for minutes):

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_inspector.py

The synthetic graph (Chung-Lu, power-law in- and out-degrees; 10M nodes,
120M edges by default) is generated once and cached under
$TIERED_BENCH_DIR/inspector (default /work/bigdata/bench/inspector).
Prints tables and writes bench/out/bench_inspector.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, drop_file_cache, machine, print_table, write_json  # noqa: E402

from tiered.format import read_array_layout, write_array  # noqa: E402
from tiered.sampling.rng import below, mix64  # noqa: E402

_INV53 = 1.0 / 9007199254740992.0


@numba.njit(nogil=True, parallel=True, cache=True)
def _chung_lu_edges(n, m, alpha_out, alpha_in, seed, perm, src, dst):
    """m edges whose endpoints follow power laws: rank r drawn with weight r^-alpha
    (closed-form inverse CDF), mapped to a node by a random permutation."""
    a_o = 1.0 - alpha_out
    a_i = 1.0 - alpha_in
    top_o = float(n) ** a_o - 1.0
    top_i = float(n) ** a_i - 1.0
    for e in numba.prange(m):
        h = mix64(np.uint64(seed) ^ mix64(np.uint64(e) + np.uint64(0x9E3779B97F4A7C15)))
        u = float(h >> np.uint64(11)) * _INV53
        h2 = mix64(h + np.uint64(0x632BE59BD9B4E019))
        w = float(h2 >> np.uint64(11)) * _INV53
        r_o = min(n - 1, int((1.0 + u * top_o) ** (1.0 / a_o)) - 1)
        r_i = min(n - 1, int((1.0 + w * top_i) ** (1.0 / a_i)) - 1)
        src[e] = perm[r_o]
        dst[e] = perm[r_i]


@numba.njit(nogil=True, cache=True)
def _csc(n, src, dst):
    indptr = np.zeros(n + 1, np.int64)
    for v in dst:
        indptr[v + 1] += 1
    for v in range(n):
        indptr[v + 1] += indptr[v]
    fill = indptr[:-1].copy()
    indices = np.empty(src.shape[0], np.int32)
    for e in range(src.shape[0]):
        indices[fill[dst[e]]] = src[e]
        fill[dst[e]] += 1
    return indptr, indices


def power_law_graph(root: Path, n: int, m: int, alpha_out: float, alpha_in: float,
                    seed: int = 1) -> Path:
    """Generate (or reuse) the CSC arrays indptr/indices under root."""
    if (root / "indices" / "zarr.json").is_file():
        return root
    t0 = time.perf_counter()
    perm = np.random.default_rng(seed).permutation(n).astype(np.int32)
    src = np.empty(m, np.int32)
    dst = np.empty(m, np.int32)
    _chung_lu_edges(n, m, alpha_out, alpha_in, seed, perm, src, dst)
    indptr, indices = _csc(n, src, dst)
    del src, dst
    write_array(root, "indptr", indptr)
    write_array(root, "indices", indices)
    (root / "graph.json").write_text(json.dumps(dict(nodes=n, edges=m, alpha_out=alpha_out,
                                                     alpha_in=alpha_in, seed=seed)))
    print(f"generated {n:,} nodes / {m:,} edges in {time.perf_counter() - t0:.1f}s -> {root}")
    return root


# ---------------------------------------------------------------------------------------
# sampling throughput

def time_sampling(sampler, batches: list[np.ndarray], key0: int) -> tuple[float, object]:
    t0 = time.perf_counter()
    sb = sampler.sample(batches, range(key0, key0 + len(batches)))
    return time.perf_counter() - t0, sb


def sampling_row(name: str, sampler, batches, key0: int, tier=None) -> dict:
    """Sample `batches` once (after one warm-up batch) and report throughput and tier traffic."""
    sampler.sample(batches[:1], [key0 - 1])
    if tier is not None:
        tier.stats.reset()
    sampler.fetched_positions = sampler.drawn_positions = 0
    dt, sb = time_sampling(sampler, batches, key0)
    row = {"config": name, "batches": len(batches), "seconds": dt,
           "edges_per_s": sb.num_edges / dt, "nodes_per_s": sb.num_accesses / dt,
           "nodes_per_batch": sb.num_accesses / len(batches)}
    if tier is not None:
        st = tier.stats.as_dict()
        row.update(tier_MB=st["bytes_read"] / 1e6, tier_MBps=st["bytes_read"] / 1e6 / dt,
                   from_cache=1 - sampler.fetched_positions / max(1, sampler.drawn_positions))
    return row


def bench_sampling(graph: Path, indptr, indices, fanouts, batches, ssd_batches, budgets,
                   threads) -> tuple[list[dict], object]:
    from tiered.format import read_array_layout
    from tiered.sampling import (NeighborCache, NeighborSampler, score_degree_ratio,
                                 score_sampled)
    from tiered.tiers.dram import DRAMTier
    rows = []
    for t in threads:
        numba.set_num_threads(t)
        s = NeighborSampler(indptr, indices, fanouts, seed=0)
        rows.append(sampling_row(f"DRAM, {t} thread{'s' if t > 1 else ''}", s, batches, 1000))
    numba.set_num_threads(max(threads))
    dram = NeighborSampler(indptr, indices, fanouts, seed=0)
    ref_time, ref = time_sampling(dram, batches, 1000)
    try:
        from tiered.tiers.ssd import SSDTier
    except ImportError as e:
        print(f"SSD tier unavailable ({e}); skipping the SSD rows")
        return rows, ref
    layout = read_array_layout(graph, "indices")
    scores = {}
    warm = [np.asarray(b) for b in batches[-4:]]
    probe = NeighborSampler(indptr, DRAMTier(indices, pin=False), fanouts, seed=1)
    t0 = time.perf_counter()
    scores["sampled"] = score_sampled(probe.sample(warm, range(5000, 5000 + len(warm))),
                                      indptr, fanouts)
    score_time = {"sampled": time.perf_counter() - t0}
    with SSDTier(layout) as tier:
        t0 = time.perf_counter()
        scores["ginex"] = score_degree_ratio(indptr, tier)
        score_time["ginex"] = time.perf_counter() - t0
        drop_file_cache(layout.chunk_path(0))
        rows.append(sampling_row("SSD, no neighbour cache", NeighborSampler(
            indptr, tier, fanouts, seed=0), ssd_batches, 1000, tier))
        for frac in budgets:
            for name, score in scores.items():
                budget = int(frac * indices.nbytes)
                t0 = time.perf_counter()
                cache = NeighborCache.build(indptr, tier, budget, score)
                build = time.perf_counter() - t0
                s = NeighborSampler(indptr, tier, fanouts, seed=0, neighbor_cache=cache)
                row = sampling_row(f"SSD, cache {frac:.0%} of indices, score {name}", s,
                                   ssd_batches, 1000, tier)
                row.update(cache_MB=cache.nbytes / 1e6, cache_lists=cache.num_cached,
                           build_s=build, score_s=score_time[name])
                rows.append(row)
    return rows, ref


def bench_pyg(indptr, indices, batches, fanouts, batch_size, workdir: Path) -> dict | None:
    """torch_geometric's NeighborLoader on the same graph and seeds, in its own venv."""
    import subprocess
    venv = Path(os.environ.get("PYG_VENV", "/work/bigdata/pygvenv"))
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"no PyG venv at {venv} (run: flock /tmp/tiered-heavy.lock sh bench/setup_pyg.sh); "
              "skipping the PyG comparison")
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    for name, arr in (("indptr", indptr), ("indices", indices)):
        path = workdir / f"{name}.npy"
        if not path.exists():
            np.save(path, arr)
    np.save(workdir / "seeds.npy", np.concatenate(batches))
    res = subprocess.run([str(py), str(Path(__file__).parent / "pyg_neighbor_loader.py"),
                          str(workdir / "indptr.npy"), str(workdir / "indices.npy"),
                          str(workdir / "seeds.npy"), ",".join(map(str, fanouts)),
                          str(batch_size)], capture_output=True, text=True)
    if res.returncode != 0:
        print("PyG run failed:\n" + res.stderr[-2000:])
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------
# plans

def bench_plans(sampler, train, batch_size, superbatch, num_batches, fracs, indptr) -> dict:
    """Rows loaded per epoch by each policy and cache size; plan time vs sampling time."""
    from tiered.inspector import batch_key
    from tiered.plan import AccessTrace, access_counts, make_policy
    n = sampler.num_nodes
    in_degree = np.diff(indptr)
    seeds = np.random.default_rng(7).permutation(train)[: num_batches * batch_size]
    groups = [[seeds[(g + i) * batch_size:(g + i + 1) * batch_size]
               for i in range(min(superbatch, num_batches - g))]
              for g in range(0, num_batches, superbatch)]
    warm = sampler.sample([train[i * batch_size:(i + 1) * batch_size] for i in range(8)],
                          [batch_key(99, i) for i in range(8)])
    freq = access_counts(AccessTrace.of(warm, n))
    policies = {}
    for f in fracs:
        C = int(f * n)
        policies[("belady", f)] = make_policy("belady", [C], n)
        policies[("lru", f)] = make_policy("lru", [C], n)
        policies[("sieve", f)] = make_policy("sieve", [C], n)
        policies[("static in-degree", f)] = make_policy("static", [C], n, score=in_degree)
        policies[("static sampled", f)] = make_policy("static", [C], n, score=freq)
    loads = {k: 0 for k in policies}
    plan_s = {k: 0.0 for k in policies}
    plan_bytes = 0
    sample_s = 0.0
    accesses = 0
    first = 0
    for g in groups:
        t0 = time.perf_counter()
        sb = sampler.sample(g, [batch_key(0, first + i) for i in range(len(g))])
        sample_s += time.perf_counter() - t0
        first += len(g)
        accesses += sb.num_accesses
        trace = AccessTrace.of(sb, n)
        for k, pol in policies.items():
            t0 = time.perf_counter()
            plan = pol.plan(trace)
            plan_s[k] += time.perf_counter() - t0
            loads[k] += plan.backing_loads
            if k == ("belady", fracs[1]):
                plan_bytes = max(plan_bytes, plan.nbytes / sb.num_accesses)
        del sb, trace
    return {"batches": num_batches, "superbatch": superbatch, "accesses": accesses,
            "sample_seconds": sample_s, "plan_bytes_per_access": plan_bytes,
            "loads": {f"{k[0]} @ {k[1]:.0%}": v for k, v in loads.items()},
            "plan_seconds": {f"{k[0]} @ {k[1]:.0%}": v for k, v in plan_s.items()},
            "policies": sorted({k[0] for k in policies}), "fracs": list(fracs)}


def bench_multitier(trials: int = 40) -> dict:
    """Two-level plan (DRAM c0 + PMem c1) vs the exact minimum cost on small random traces."""
    from tiered.plan import AccessTrace, BeladyPolicy
    from tiered.plan.exact import exact_two_level_cost, two_level_cost
    rng = np.random.default_rng(11)
    out = {}
    p, s = 1.0, 10.0
    for w in (0.0, 1.0, 3.0):
        ratios = []
        for _ in range(trials):
            n = 6
            wts = (np.arange(n) + 1.0) ** -0.8
            batches = [rng.choice(n, size=int(rng.integers(1, 4)), replace=False,
                                  p=wts / wts.sum()) for _ in range(7)]
            trace = AccessTrace.from_batches(batches, n)
            plan = BeladyPolicy([1, 2], n).plan(trace)
            opt = exact_two_level_cost(trace, 1, 2, p, s, w)
            ratios.append(two_level_cost(plan, p, s, w) / opt if opt else 1.0)
        out[f"w={w:g}"] = {"mean": float(np.mean(ratios)), "max": float(np.max(ratios)),
                           "optimal_share": float(np.mean(np.isclose(ratios, 1.0)))}
    return {"pmem_read": p, "backing_read": s, "trials": trials, "gap": out}


def dram_bytes(n: int, fracs, indices_nbytes: int) -> list[dict]:
    """Bytes per node of what the inspector keeps between superbatches (measured on objects)."""
    from tiered.plan import BeladyPolicy, CacheState, LRUPolicy
    from tiered.sampling import NeighborCache
    rows = [{"what": "indptr (int64, the topology)", "bytes": 8 * (n + 1)},
            {"what": "neighbour cache membership (bitmap + rank)",
             "bytes": NeighborCache.empty(n).bits.nbytes + NeighborCache.empty(n).rank.nbytes}]
    pol = BeladyPolicy([1], n)
    rows.append({"what": "Belady next-use scratch (int32)", "bytes": pol._scratch.nbytes})
    for f in fracs:
        C = int(f * n)
        st = CacheState(np.zeros(C, np.int32), np.zeros(C, np.int8), np.zeros(C, np.int32))
        rows.append({"what": f"Belady carried cache state @ {f:.0%}",
                     "bytes": st.node.nbytes + st.level.nbytes + st.slot.nbytes})
    rows.append({"what": "LRU maps @ 10% (comparison policy)", "bytes": LRUPolicy(int(0.1 * n), n).nbytes})
    for r in rows:
        r["per_node"] = r["bytes"] / n
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000_000)
    ap.add_argument("--edges", type=int, default=120_000_000)
    ap.add_argument("--alpha", type=float, default=0.6, help="power-law exponent of the degree ranks")
    ap.add_argument("--fanouts", default="15,10,5")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=64, help="batches timed in DRAM")
    ap.add_argument("--ssd-batches", type=int, default=16, help="batches timed on the SSD tier")
    ap.add_argument("--superbatch", type=int, default=64)
    ap.add_argument("--epoch-batches", type=int, default=192, help="batches of the policy table")
    ap.add_argument("--skip-pyg", action="store_true")
    args = ap.parse_args()
    fanouts = [int(f) for f in args.fanouts.split(",")]
    fracs = (0.05, 0.10, 0.25)
    graph = power_law_graph(BENCH_DIR / "inspector" / f"powerlaw-{args.nodes}-{args.edges}",
                            args.nodes, args.edges, args.alpha, args.alpha)
    indptr = read_array_layout(graph, "indptr").read_all()
    indices = read_array_layout(graph, "indices").read_all()
    n = len(indptr) - 1
    train = np.random.default_rng(0).permutation(n)[: n // 10]
    bs = args.batch_size
    batches = [train[i * bs:(i + 1) * bs] for i in range(args.batches)]
    result = {"machine": machine(), "args": vars(args), "graph": json.loads(
        (graph / "graph.json").read_text()), "numba_threads": numba.get_num_threads()}

    print(f"== sampling: {n:,} nodes, {len(indices):,} edges, fanouts {fanouts}, batch {bs}")
    threads = sorted({1, numba.get_num_threads()})
    rows, ref = bench_sampling(graph, indptr, indices, fanouts, batches,
                               batches[: args.ssd_batches], (0.10, 0.25), threads)
    result["sampling"] = rows
    result["touched_per_batch"] = ref.num_accesses / len(batches) / n
    if not args.skip_pyg:
        pyg = bench_pyg(indptr, indices, batches, fanouts, bs, BENCH_DIR / "inspector" / "pyg")
        result["pyg"] = pyg
        if pyg:
            for mode in ("loader", "raw"):
                rows.append({"config": f"PyG 2.8.1 NeighborLoader ({mode})",
                             "batches": pyg[mode]["batches"], "seconds": pyg[mode]["seconds"],
                             "edges_per_s": pyg[mode]["edges_per_s"],
                             "nodes_per_s": pyg[mode]["nodes_per_s"],
                             "nodes_per_batch": pyg[mode]["nodes"] / pyg[mode]["batches"]})
    print_table(rows, [("config", "config", "s"), ("seconds", "s", ".2f"),
                       ("edges_per_s", "edges/s", ",.0f"), ("nodes_per_s", "nodes/s", ",.0f"),
                       ("nodes_per_batch", "nodes/batch", ",.0f"), ("tier_MB", "SSD MB", ".0f"),
                       ("tier_MBps", "SSD MB/s", ".0f"), ("from_cache", "from cache", ".1%")])
    print(f"one batch touches {result['touched_per_batch']:.1%} of the nodes")

    print(f"\n== plans: {args.epoch_batches} batches, superbatch {args.superbatch}")
    from tiered.sampling import NeighborSampler
    plans = bench_plans(NeighborSampler(indptr, indices, fanouts, seed=0), train, bs,
                        args.superbatch, args.epoch_batches, fracs, indptr)
    result["plans"] = plans
    prow = []
    for pol in ("belady", "lru", "sieve", "static in-degree", "static sampled"):
        r = {"policy": pol}
        for f in fracs:
            k = f"{pol} @ {f:.0%}"
            r[f"{f:.0%}"] = plans["loads"][k] / 1e6
            r[f"t{f:.0%}"] = plans["plan_seconds"][k] / plans["sample_seconds"]
        prow.append(r)
    print(f"rows loaded per epoch (millions; {plans['accesses'] / 1e6:.1f}M rows requested) and "
          f"plan time / sampling time ({plans['sample_seconds']:.1f}s of sampling)")
    print_table(prow, [("policy", "policy", "s")] +
                [(f"{f:.0%}", f"loads @{f:.0%}", ".2f") for f in fracs] +
                [(f"t{f:.0%}", f"plan/sample @{f:.0%}", ".1%") for f in fracs])
    for f in fracs:
        col = {p: plans["loads"][f"{p} @ {f:.0%}"] for p in plans["policies"]}
        print(f"  cache {f:.0%}: Belady minimum: {col['belady'] == min(col.values())}; "
              f"LRU / Belady = {col['lru'] / col['belady']:.2f}")
    print(f"plan size: {plans['plan_bytes_per_access']:.1f} B per access (Belady @ 10%)")

    print("\n== two-level plan vs exact minimum cost (PMem read 1, backing read 10, PMem write w)")
    mt = bench_multitier()
    result["multitier"] = mt
    print_table([{"w": k, **v} for k, v in mt["gap"].items()],
                [("w", "write cost", "s"), ("mean", "mean cost/opt", ".4f"),
                 ("max", "max cost/opt", ".4f"), ("optimal_share", "optimal", ".0%")])

    print(f"\n== DRAM held between superbatches at {n:,} nodes")
    dr = dram_bytes(n, fracs, indices.nbytes)
    result["dram"] = dr
    print_table(dr, [("what", "structure", "s"), ("bytes", "bytes", ",d"),
                     ("per_node", "B/node", ".2f")])
    total = sum(r["per_node"] for r in dr if "@ 10%" in r["what"] and "Belady" in r["what"]) + \
        sum(r["per_node"] for r in dr if "@" not in r["what"])
    result["bytes_per_node_belady_10pct"] = total
    print(f"total for Belady with a 10% cache, indptr included: {total:.2f} B/node")
    print(f"\nwrote {write_json('bench_inspector', result)}")


if __name__ == "__main__":
    main()
