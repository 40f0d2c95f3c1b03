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
from tiered.sampling.rng import mix64  # noqa: E402

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
        drop_file_cache(tier.layout.chunk_path(0))
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


class _Recorder:
    """Wraps a tier; remembers the positions of every read call (for the cache simulation)."""

    def __init__(self, inner):
        from tiered.tiers.base import Tier

        class Rec(Tier):
            hints = inner.hints
            calls: list = []

            def _read(self, ids, out):
                Rec.calls.append(ids.copy())
                inner.read_rows(ids, out)
                return out.nbytes

            def _write(self, ids, rows):
                raise PermissionError("read-only")

        self.tier = Rec("rec", inner.num_rows, inner.row_shape, inner.dtype)
        self.calls = Rec.calls


def cache_choice(indptr, indices, fanouts, test_batches, warm_batches, budgets, chunk) -> list[dict]:
    """Pages the SSD tier would read with each kind of neighbour cache, same budget, by simulation.

    List caches (Ginex: whole adjacency lists ranked by out/in-degree, or by positions drawn
    per byte in warm-up batches) against page caches (pages ranked by page reads in warm-up
    batches, or by the degree estimate). Scores come from warm-up batches, pages are counted
    on other batches.
    """
    from tiered.sampling import NeighborSampler, page_degree_score, page_reads
    from tiered.sampling.neighbor_cache import PAGE_BYTES
    from tiered.tiers.dram import DRAMTier
    n = len(indptr) - 1
    deg = np.diff(indptr)
    shift = (PAGE_BYTES // indices.itemsize).bit_length() - 1
    ram = DRAMTier(indices, pin=False)

    def record(batches, key0):
        rec = _Recorder(ram)
        NeighborSampler(indptr, rec.tier, fanouts, seed=0, chunk_batches=chunk).sample(
            batches, range(key0, key0 + len(batches)))
        return rec.calls

    test_calls = record(test_batches, 1000)
    warm_calls = record(warm_batches, 5000)
    out_deg = np.bincount(indices, minlength=n)
    drawn = np.zeros(n, np.int64)
    for c in warm_calls:
        drawn += np.bincount(np.searchsorted(indptr, c, side="right") - 1, minlength=n)
    list_cost = deg * indices.itemsize + 8
    list_scores = {"list, Ginex out/in-degree": out_deg / np.maximum(deg, 1),
                   "list, drawn positions per byte": drawn / list_cost}
    page_scores = {"page, sampled page reads": page_reads(indptr, ram, fanouts, warm_batches,
                                                          range(5000, 5000 + len(warm_batches)),
                                                          chunk_batches=chunk),
                   "page, degree estimate": page_degree_score(indptr, ram, max(fanouts))}
    owners = [np.searchsorted(indptr, c, side="right") - 1 for c in test_calls]
    pages = [c >> shift for c in test_calls]
    base = sum(len(np.unique(p)) for p in pages)
    rows = [{"cache": "none", "budget": 0.0, "pages": base, "share": 1.0}]
    for frac in budgets:
        budget = frac * indices.nbytes
        for name, sc in list_scores.items():
            order = np.argsort(-sc, kind="stable")
            keep = order[: int(np.searchsorted(np.cumsum(list_cost[order]), budget))]
            cached = np.zeros(n, bool)
            cached[keep] = True
            read = sum(len(np.unique(p[~cached[o]])) for p, o in zip(pages, owners))
            rows.append({"cache": name, "budget": frac, "pages": read, "share": read / base})
        for name, sc in page_scores.items():
            cached = np.zeros(len(sc), bool)
            cached[np.argsort(-sc, kind="stable")[: int(budget // PAGE_BYTES)]] = True
            read = sum(len(np.unique(p[~cached[p]])) for p in pages)
            rows.append({"cache": name, "budget": frac, "pages": read, "share": read / base})
    return rows


def bench_sampling(graph: Path, indptr, indices, fanouts, batches, ssd_batches, warm, budgets,
                   threads) -> list[dict]:
    from tiered.format import read_array_layout
    from tiered.sampling import NeighborCache, NeighborSampler, page_reads
    rows = []
    for t in threads:
        numba.set_num_threads(t)
        s = NeighborSampler(indptr, indices, fanouts, seed=0)
        rows.append(sampling_row(f"DRAM, {t} thread{'s' if t > 1 else ''}", s, batches, 1000))
    numba.set_num_threads(max(threads))
    try:
        from tiered.tiers.ssd import SSDTier
    except ImportError as e:
        print(f"SSD tier unavailable ({e}); skipping the SSD rows")
        return rows
    layout = read_array_layout(graph, "indices")
    with SSDTier(layout) as tier:
        for chunk in (8, 32):
            rows.append(sampling_row(f"SSD, chunks of {chunk} batches, no cache", NeighborSampler(
                indptr, tier, fanouts, seed=0, chunk_batches=chunk), ssd_batches, 1000, tier))
        t0 = time.perf_counter()
        score = page_reads(indptr, tier, fanouts, warm, range(5000, 5000 + len(warm)),
                           chunk_batches=32)
        score_s = time.perf_counter() - t0
        for frac in budgets:
            t0 = time.perf_counter()
            cache = NeighborCache.build(tier, int(frac * indices.nbytes), score)
            build = time.perf_counter() - t0
            s = NeighborSampler(indptr, tier, fanouts, seed=0, neighbor_cache=cache,
                                chunk_batches=32)
            row = sampling_row(f"SSD, chunks of 32, page cache {frac:.0%} of indices", s,
                               ssd_batches, 1000, tier)
            row.update(cache_MB=cache.nbytes / 1e6, build_s=build, score_s=score_s)
            rows.append(row)
    return rows


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
    ssd = batches[: args.ssd_batches]
    warm = [train[-(i + 1) * bs: -i * bs or None] for i in range(8)]
    rows = bench_sampling(graph, indptr, indices, fanouts, batches, ssd, warm, (0.10, 0.25, 0.50),
                          threads)
    result["sampling"] = rows
    result["touched_per_batch"] = rows[0]["nodes_per_batch"] / n
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

    print("\n== neighbour cache: pages of indices read per kind of cache (simulated, same budget)")
    choice = cache_choice(indptr, indices, fanouts, ssd, warm, (0.10, 0.25, 0.50), 32)
    result["cache_choice"] = choice
    print_table(choice, [("cache", "cache", "s"), ("budget", "budget", ".0%"),
                         ("pages", "pages read", ",d"), ("share", "of no cache", ".1%")])

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
