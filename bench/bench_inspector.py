"""Inspector benchmark: sampling throughput, plan cost, rows loaded per cache policy, DRAM per node.

Run under the machine-wide lock (it uses both cores for minutes):

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_inspector.py

The synthetic graph (Chung-Lu, power-law in- and out-degrees; 10M nodes,
120M edges by default) is read from --graph, or generated once there when it is
missing. Prints tables and writes bench/out/bench_inspector.json:

1. sampling throughput, `indices` in DRAM vs on the SSD tier, without and with
   the neighbour cache (page cache, two scores), and PyG's NeighborLoader on the
   same seeds, in DRAM and over an np.memmap inside a cgroup of the same memory
   budget as our 25% page cache;
2. which neighbour cache saves most SSD page reads at a given budget (lists ranked
   as Ginex does vs pages), by simulation on the same batches;
3. per cache policy and cache size (5/10/20/40% of the rows): hit rate, rows and
   bytes read, plan time per superbatch and its share of the inspector's time;
4. the two-level (DRAM + PMem) plan's cost against the exact minimum on small traces;
5. DRAM held per node between superbatches.
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
from common import BENCH_DIR, drop_file_cache, machine, write_json  # noqa: E402

from tiered.format import read_array_layout, write_array  # noqa: E402
from tiered.splitmix import INV53, mix64  # noqa: E402

DEFAULT_GRAPH = Path("/work/bigdata/inspector/powerlaw-10M-120M")
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format spec); a row without the key shows '-'."""
    cells = [[format(r[k], f) if r.get(k) is not None else "-" for k, _, f in columns]
             for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h, _) in enumerate(columns)]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths)))
    for c in cells:
        print("  ".join(x.rjust(w) for x, w in zip(c, widths)))


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
        u = float(h >> np.uint64(11)) * INV53
        h2 = mix64(h + np.uint64(0x632BE59BD9B4E019))
        w = float(h2 >> np.uint64(11)) * INV53
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
    from tiered.sampling import NeighborCache, NeighborSampler, page_degree_score, page_reads
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
        t0 = time.perf_counter()
        degree = page_degree_score(indptr, tier, max(fanouts))
        degree_s = time.perf_counter() - t0
        runs = [(f, "sampled page reads", score, score_s) for f in budgets] + \
            [(0.25, "degree estimate", degree, degree_s)]
        for frac, name, sc, sc_s in runs:
            t0 = time.perf_counter()
            cache = NeighborCache.build(tier, int(frac * indices.nbytes), sc)
            build = time.perf_counter() - t0
            s = NeighborSampler(indptr, tier, fanouts, seed=0, neighbor_cache=cache,
                                chunk_batches=32)
            row = sampling_row(f"SSD, chunks of 32, page cache {frac:.0%} ({name})", s,
                               ssd_batches, 1000, tier)
            row.update(cache_MB=cache.nbytes / 1e6, build_s=build, score_s=sc_s, budget=frac)
            rows.append(row)
    return rows


def _pyg_run(py: Path, files: list[str], fanouts, batch_size: int, extra: list[str],
             limit: int | None = None, timeout: float | None = None) -> dict:
    """One run of bench/pyg_neighbor_loader.py, inside a memory cgroup of `limit` bytes,
    stopped after `timeout` seconds."""
    import subprocess
    cg = None
    if limit is not None:
        cg = CGROUP_ROOT / f"tiered-bench-pyg-{os.getpid()}"
        cg.mkdir()
        (cg / "memory.limit_in_bytes").write_text(str(limit))

    def enter() -> None:
        if cg is not None:
            (cg / "tasks").write_text(str(os.getpid()))

    try:
        out = {}
        try:
            res = subprocess.run([str(py), str(Path(__file__).parent / "pyg_neighbor_loader.py"),
                                  *files, ",".join(map(str, fanouts)), str(batch_size), *extra],
                                 capture_output=True, text=True, preexec_fn=enter, timeout=timeout)
        except subprocess.TimeoutExpired:
            res = None
        if cg is not None:
            out["cgroup_max_usage"] = int((cg / "memory.max_usage_in_bytes").read_text())
    finally:
        if cg is not None:
            cg.rmdir()
    if res is None:
        return {**out, "error": f"stopped after {timeout:.0f} s"}
    if res.returncode != 0:
        return {**out, "error": (res.stderr.strip().splitlines() or ["killed"])[-1]}
    return {**out, **json.loads(res.stdout.strip().splitlines()[-1])}


def bench_pyg(indptr, indices, batches, mmap_batches, fanouts, batch_size, workdir: Path,
              budget: int, mmap_timeout: float) -> dict | None:
    """torch_geometric's NeighborLoader on the same graph and seeds, in its own venv: with the
    topology in DRAM, and over an np.memmap of int64 indices in a cgroup whose limit is the
    process's own size plus `budget` bytes (the same DRAM our SSD sampler's page cache gets)."""
    venv = Path(os.environ.get("PYG_VENV", "/work/bigdata/pygvenv"))
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"no PyG venv at {venv} (run: flock /tmp/tiered-heavy.lock sh bench/setup_pyg.sh); "
              "skipping the PyG comparison")
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "indptr.npy").exists():
        np.save(workdir / "indptr.npy", indptr)
    i64 = workdir / "indices_int64.npy"
    if not i64.exists():
        out = np.lib.format.open_memmap(i64, mode="w+", dtype=np.int64, shape=indices.shape)
        for s in range(0, len(indices), 1 << 24):
            out[s:s + (1 << 24)] = indices[s:s + (1 << 24)]
        out.flush()
        del out
    np.save(workdir / "seeds.npy", np.concatenate(batches))
    np.save(workdir / "seeds_mmap.npy", np.concatenate(mmap_batches))
    files = [str(workdir / "indptr.npy"), str(i64)]
    result = {"dram": _pyg_run(py, files + [str(workdir / "seeds.npy")], fanouts, batch_size, [])}
    probe = _pyg_run(py, files + [str(workdir / "seeds_mmap.npy")], fanouts, batch_size,
                     ["--mmap", "--probe"])
    if "rss" in probe:
        limit = probe["rss"] + budget
        drop_file_cache(i64)
        run = _pyg_run(py, files + [str(workdir / "seeds_mmap.npy")], fanouts, batch_size,
                       ["--mmap"], limit=limit, timeout=mmap_timeout)
        result["mmap"] = {**run, "probe_rss": probe["rss"], "budget": budget, "limit": limit}
    else:
        result["mmap"] = probe
    return result


# ---------------------------------------------------------------------------------------
# plans

def pages_read(plan, rows_per_page: int) -> int:
    """Distinct pages of the backing tier a plan's loads touch, batch by batch (a page read
    once per batch serves every row on it)."""
    back = plan.load_level == plan.num_levels
    ids = plan.load_ids.astype(np.int64) // rows_per_page
    new = np.ones(len(ids), bool)
    new[1:] = (ids[1:] != ids[:-1]) | (plan.load_level[1:] != plan.load_level[:-1])
    starts = plan.load_ptr[:-1][np.diff(plan.load_ptr) > 0]
    new[starts] = True
    return int(np.count_nonzero(new & back))


def ssd_page_iops(row_bytes: int) -> float | None:
    """4 KiB pages/s the SSD tier gathered in bench/out/ssd_gather.json (median over its runs
    with rows of this size), to turn a plan's page reads into seconds; None without it."""
    path = Path(__file__).parent / "out" / "ssd_gather.json"
    if not path.exists():
        return None
    runs = [r["tiered_page_iops"] for r in json.loads(path.read_text())["results"]
            if r.get("row_bytes") == row_bytes and r.get("tiered_page_iops")]
    return float(np.median(runs)) if runs else None


def bench_plans(sampler, train, batch_size, superbatch, num_batches, fracs, indptr,
                row_bytes: int) -> dict:
    """Per policy and cache size: rows and bytes loaded, plan time per superbatch vs sampling."""
    from tiered.inspector import batch_key
    from tiered.plan import AccessTrace, access_counts, make_policy
    n = sampler.num_nodes
    in_degree = np.diff(indptr)
    rows_per_page = max(1, 4096 // row_bytes)
    seeds = np.random.default_rng(7).permutation(train)[: num_batches * batch_size]
    groups = [[seeds[(g + i) * batch_size:(g + i + 1) * batch_size]
               for i in range(min(superbatch, num_batches - g))]
              for g in range(0, num_batches, superbatch)]
    warm = sampler.sample([train[i * batch_size:(i + 1) * batch_size] for i in range(8)],
                          [batch_key(99, i) for i in range(8)])
    freq = access_counts(AccessTrace.of(warm, n))
    names = ("belady", "lru", "sieve", "static in-degree", "static sampled", "none")
    policies = {}
    for f in fracs:
        C = int(f * n)
        for name in names[:3]:
            policies[(name, f)] = make_policy(name, [C], n)
        policies[("static in-degree", f)] = make_policy("static", [C], n, score=in_degree)
        policies[("static sampled", f)] = make_policy("static", [C], n, score=freq)
    policies[("none", 0.0)] = make_policy("none", 0, n)
    loads = dict.fromkeys(policies, 0)
    pages = dict.fromkeys(policies, 0)
    plan_s = {k: [] for k in policies}
    sample_s = []
    plan_bytes = 0.0
    accesses = 0
    first = 0
    for g in groups:
        t0 = time.perf_counter()
        sb = sampler.sample(g, [batch_key(0, first + i) for i in range(len(g))])
        sample_s.append(time.perf_counter() - t0)
        first += len(g)
        accesses += sb.num_accesses
        trace = AccessTrace.of(sb, n)
        for k, pol in policies.items():
            t0 = time.perf_counter()
            plan = pol.plan(trace)
            plan_s[k].append(time.perf_counter() - t0)
            loads[k] += plan.backing_loads
            pages[k] += pages_read(plan, rows_per_page)
            if k == ("belady", fracs[1]):
                plan_bytes = max(plan_bytes, plan.nbytes / sb.num_accesses)
            del plan
        del sb, trace
    iops = ssd_page_iops(row_bytes)
    table = []
    for (name, f), pol in policies.items():
        per_sb = float(np.mean(plan_s[(name, f)]))
        smp = float(np.mean(sample_s))
        load = pages[(name, f)] / len(groups) / iops if iops else None
        table.append({"policy": name, "cache": f, "hit_rate": 1 - loads[(name, f)] / accesses,
                      "rows_M": loads[(name, f)] / 1e6,
                      "GB_rows": loads[(name, f)] * row_bytes / 1e9,
                      "GB_pages": pages[(name, f)] * 4096 / 1e9,
                      "plan_s_per_sb": per_sb, "plan_share": per_sb / (per_sb + smp),
                      "load_s_per_sb": load,
                      "plan_share_epoch": per_sb / (per_sb + smp + load) if load else None,
                      "state_MB": pol.nbytes / 1e6})
    return {"batches": num_batches, "superbatch": superbatch, "accesses": accesses,
            "row_bytes": row_bytes, "ssd_page_iops": iops, "sample_seconds_per_sb": sample_s,
            "plan_seconds_per_sb": {f"{k[0]} @ {k[1]:.0%}": v for k, v in plan_s.items()},
            "plan_bytes_per_access": plan_bytes, "table": table, "fracs": list(fracs)}


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
    one_page = NeighborCache(indices_nbytes // 4, np.zeros(1, np.int64), np.zeros(1024, np.int32))
    rows = [{"what": "indptr (int64, the topology)", "bytes": 8 * (n + 1)},
            {"what": "neighbour cache membership (bitmap + rank over pages)",
             "bytes": one_page.bits.nbytes + one_page.rank.nbytes}]
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
    ap.add_argument("--graph", type=Path, default=DEFAULT_GRAPH if DEFAULT_GRAPH.is_dir() else
                    None, help=f"graph directory (indptr, indices) [{DEFAULT_GRAPH}]")
    ap.add_argument("--nodes", type=int, default=10_000_000, help="when generating")
    ap.add_argument("--edges", type=int, default=120_000_000, help="when generating")
    ap.add_argument("--alpha", type=float, default=0.6, help="power-law exponent of the degree ranks")
    ap.add_argument("--fanouts", default="15,10,5")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=32, help="batches timed in DRAM")
    ap.add_argument("--ssd-batches", type=int, default=16, help="batches timed on the SSD tier")
    ap.add_argument("--superbatch", type=int, default=64)
    ap.add_argument("--epoch-batches", type=int, default=192, help="batches of the policy table")
    ap.add_argument("--row-bytes", type=int, default=512, help="feature row size for bytes read")
    ap.add_argument("--pyg-batches", type=int, default=16, help="batches PyG samples in DRAM")
    ap.add_argument("--pyg-mmap-batches", type=int, default=4,
                    help="batches PyG samples over np.memmap (slow: page faults)")
    ap.add_argument("--pyg-mmap-timeout", type=float, default=180,
                    help="seconds before the memmap run is stopped (it thrashes at small budgets)")
    ap.add_argument("--skip-pyg", action="store_true")
    args = ap.parse_args()
    fanouts = [int(f) for f in args.fanouts.split(",")]
    fracs = (0.05, 0.10, 0.20, 0.40)
    graph = args.graph or BENCH_DIR / "inspector" / f"powerlaw-{args.nodes}-{args.edges}"
    graph = power_law_graph(graph, args.nodes, args.edges, args.alpha, args.alpha)
    indptr = read_array_layout(graph, "indptr").read_all()
    indices = read_array_layout(graph, "indices").read_all()
    n = len(indptr) - 1
    train = np.random.default_rng(0).permutation(n)[: n // 10]
    bs = args.batch_size
    batches = [train[i * bs:(i + 1) * bs] for i in range(args.batches)]
    result = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
              "graph": json.loads((graph / "graph.json").read_text()),
              "numba_threads": numba.get_num_threads()}
    t_start = time.perf_counter()

    print(f"== sampling: {n:,} nodes, {len(indices):,} edges, fanouts {fanouts}, batch {bs}")
    threads = sorted({1, numba.get_num_threads()})
    ssd = batches[: args.ssd_batches]
    warm = [train[-(i + 1) * bs: -i * bs or None] for i in range(8)]
    rows = bench_sampling(graph, indptr, indices, fanouts, batches, ssd, warm, (0.10, 0.25, 0.50),
                          threads)
    result["sampling"] = rows
    result["touched_per_batch"] = rows[0]["nodes_per_batch"] / n
    if not args.skip_pyg:
        budget = next((int(r["cache_MB"] * 1e6) for r in rows if r.get("budget") == 0.25), 0)
        pyg = bench_pyg(indptr, indices, batches[: args.pyg_batches + 1],
                        batches[: args.pyg_mmap_batches + 1], fanouts,
                        bs, BENCH_DIR / "inspector" / "pyg", budget, args.pyg_mmap_timeout)
        result["pyg"] = pyg
        for mode, what in (("dram", "loader"), ("dram", "raw"), ("mmap", "loader")):
            r = (pyg or {}).get(mode, {})
            if what in r:
                v = r[what]
                name = ("PyG NeighborLoader" if what == "loader" else "PyG neighbor_sample") + \
                    (", indices in DRAM" if mode == "dram" else
                     f", np.memmap, cgroup {r['limit'] / 1e6:.0f} MB (RSS + {budget / 1e6:.0f} MB)")
                rows.append({"config": name, "batches": v["batches"], "seconds": v["seconds"],
                             "edges_per_s": v["edges_per_s"], "nodes_per_s": v["nodes_per_s"],
                             "nodes_per_batch": v["nodes"] / v["batches"]})
            elif r.get("error"):
                print(f"PyG {mode} run failed: {r['error']}")
    print_table(rows, [("config", "config", "s"), ("batches", "batches", "d"),
                       ("seconds", "s", ".2f"), ("edges_per_s", "edges/s", ",.0f"),
                       ("nodes_per_s", "nodes/s", ",.0f"),
                       ("nodes_per_batch", "nodes/batch", ",.0f"),
                       ("tier_MB", "SSD MB", ".0f"), ("tier_MBps", "SSD MB/s", ".0f"),
                       ("from_cache", "from cache", ".1%"), ("cache_MB", "cache MB", ".0f")])
    print(f"one batch touches {result['touched_per_batch']:.1%} of the nodes")
    write_json("bench_inspector", result)

    print("\n== neighbour cache: pages of indices read per kind of cache (simulated, same budget)")
    choice = cache_choice(indptr, indices, fanouts, ssd, warm, (0.10, 0.25, 0.50), 32)
    result["cache_choice"] = choice
    write_json("bench_inspector", result)              # partial results survive a timeout
    print_table(choice, [("cache", "cache", "s"), ("budget", "budget", ".0%"),
                         ("pages", "pages read", ",d"), ("share", "of no cache", ".1%")])

    print(f"\n== plans: {args.epoch_batches} batches, superbatch {args.superbatch}, rows of "
          f"{args.row_bytes} B")
    from tiered.sampling import NeighborSampler
    plans = bench_plans(NeighborSampler(indptr, indices, fanouts, seed=0), train, bs,
                        args.superbatch, args.epoch_batches, fracs, indptr, args.row_bytes)
    result["plans"] = plans
    write_json("bench_inspector", result)
    print(f"{plans['accesses'] / 1e6:.1f}M rows requested; sampling "
          f"{np.mean(plans['sample_seconds_per_sb']):.2f} s per superbatch")
    print_table(plans["table"], [("policy", "policy", "s"), ("cache", "cache", ".0%"),
                                 ("hit_rate", "hit rate", ".3f"),
                                 ("rows_M", "rows read (M)", ".2f"), ("GB_rows", "GB (rows)", ".2f"),
                                 ("GB_pages", "GB (4K pages)", ".2f"),
                                 ("plan_s_per_sb", "plan s/superbatch", ".3f"),
                                 ("plan_share", "plan / (sample+plan)", ".1%"),
                                 ("load_s_per_sb", "SSD reads s/sb (est.)", ".1f"),
                                 ("plan_share_epoch", "plan / epoch (serial)", ".1%"),
                                 ("state_MB", "policy MB", ".0f")])
    for f in fracs:
        col = {r["policy"]: r["rows_M"] for r in plans["table"] if r["cache"] == f}
        print(f"  cache {f:.0%}: Belady fewest rows: {col['belady'] == min(col.values())}; "
              f"LRU / Belady = {col['lru'] / col['belady']:.2f}")
    print(f"plan size: {plans['plan_bytes_per_access']:.1f} B per access (Belady @ 10%)")

    print("\n== two-level plan vs exact minimum cost (PMem read 1, backing read 10, PMem write w)")
    mt = bench_multitier()
    result["multitier"] = mt
    write_json("bench_inspector", result)
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
    result["seconds"] = time.perf_counter() - t_start
    print(f"\nwrote {write_json('bench_inspector', result)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
