"""tiered-advise: where should each array go, and how large should each cache be?

    tiered-advise DATASET --dram-budget 4GiB [--pmem PATH:SIZE] [--ssd DIR] \
        [--fanouts 15,10,5 --batch-size 1024 --model sage ...] [--out DIR]

Probes the tiers (cached per device), profiles the workload on sampled batches,
predicts each candidate placement's epoch time with the cost model of
docs/advisor.md, prints the ranked table and the persistent-memory guidance, and
writes advice.json, advice.yaml (a `tiered-train --config` file of the best
placement) and advice.png (predicted epoch time against the DRAM budget).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..dataset import open_dataset
from ..manager import PlacementError
from ..train.config import TrainConfig, make_config
from ..train.loader import available_memory
from ..units import format_size, parse_size
from ..train.loader import probe_batch_rows
from . import cost, guidance, placements, probe, report
from .profile import Profile, profile_workload

CURVE_SHARES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def _figures(c: placements.Candidate) -> cost.PlacementFigures:
    levels = () if c.policy == "none" else (("dram", "pmem") if c.pmem_cache_rows else ("dram",))
    return cost.PlacementFigures(c.name, c.features_on, levels, c.bytes)


def _workload(prof: Profile) -> cost.Workload:
    return cost.Workload(prof.batches_per_epoch, prof.row_bytes, prof.cfg.superbatch,
                         prof.sample_seconds_per_batch, prof.compute_seconds_per_batch,
                         prof.batch_overhead_seconds_per_batch)


def price(c: placements.Candidate, prof: Profile, probes: dict) -> cost.Prediction:
    """Simulate the candidate's policy on the profile's trace and predict its epoch."""
    t = prof.simulate(c.policy, c.capacities, backing_ssd=c.features_on == "ssd")
    return cost.predict(_figures(c), cost.TrafficFigures.of(t), _workload(prof), probes)


def memory_mode_estimate(ds, base: TrainConfig, prof: Profile, probes: dict, budget: int,
                         pmem: str, rows: int) -> float | None:
    """Memory Mode (docs/advisor.md): features in memory of DRAM + PMem capacity, plus LRU's
    misses at the DRAM size priced at (PMem row read - DRAM row read)."""
    pool_bytes = parse_size(pmem.rpartition(":")[2])
    cands = placements.candidates(ds, base, budget + pool_bytes, None, rows)
    dram = next((c for c in cands if c.features_on == "dram" and c.feasible), None)
    if dram is None or probes.get("pmem") is None:
        return None
    q = price(dram, prof, probes)
    cache_rows = min(prof.num_nodes, budget // prof.row_bytes)
    lru = prof.simulate("lru", (cache_rows,), backing_ssd=False)
    misses = sum(lru.loads)
    per = max(lru.rows, 1) / max(prof.batches_per_epoch, 1)
    extra = misses * max(0.0, cost._mem_read(probes["pmem"], prof.row_bytes, per)
                         - cost._mem_read(probes["dram"], prof.row_bytes, per))
    return q.epoch_seconds + extra


def sweep(ds, base: TrainConfig, prof: Profile, probes: dict, budgets: list[int],
          pmem: str | None, rows: int, progress: bool) -> dict[str, list[tuple[int, float]]]:
    """Predicted epoch time of each kind of placement at each DRAM budget (for the plot)."""
    from tqdm import tqdm
    out: dict[str, list[tuple[int, float]]] = {}
    for b in tqdm(budgets, desc="budget sweep", unit="budget", leave=False, disable=not progress):
        for c in placements.candidates(ds, base, b, pmem, rows):
            if c.feasible:
                out.setdefault(c.name, []).append((b, price(c, prof, probes).epoch_seconds))
    return out


def advise(dataset: str, dram_budget: str | int | None = None, pmem: str | None = None,
           ssd_dir: str | None = None, out_dir: str | Path | None = None,
           cache_sizes: tuple[str, ...] = ("10%", "25%"), profile_batches: int = 256,
           reprobe: bool = False, cache_dir: str | None = None, probes: dict | None = None,
           sweep_points: int = 6, progress: bool = True, **train) -> dict:
    """Run the whole advisor; returns the advice (what advice.json holds) and writes the
    files into `out_dir` when given. `train` takes TrainConfig fields (fanouts, model...)."""
    budget = parse_size(dram_budget) if dram_budget is not None else int(available_memory() * .8)
    base = make_config(dataset=dataset, dram_budget=str(budget), pmem=None, **train)
    ds = open_dataset(dataset)
    if ds.task != "node" or not ds.feature_dim:
        raise ValueError(f"{dataset}: the advisor handles node classification datasets with "
                         f"features (task {ds.task!r}, feature_dim {ds.feature_dim})")
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    if probes is None:
        log("probing the tiers (cached per device; --reprobe to measure again)")
        probes = probe.probe_tiers(ssd_dir or dataset, placements_pool(pmem), cache_dir=cache_dir,
                                   reprobe=reprobe, progress=progress)
    rows = probe_batch_rows(ds, base)
    cands = placements.candidates(ds, base, budget, pmem, rows, cache_sizes)
    ok = placements.feasible_or_raise(cands, ds, base, budget, pmem, rows)
    indices_on = ok[0].tiers.get("indices", "dram")
    log(f"profiling {min(profile_batches, 2 * -(-len(ds.split('train')) // base.batch_size))} "
        f"batches (indices on {indices_on})")
    prof = profile_workload(ds, base, indices_on, profile_batches, progress=progress)
    preds = cost.rank([price(c, prof, probes) for c in ok])
    by_name = {c.name: c for c in ok}
    curve = prof.miss_curve(sorted({max(1, int(s * prof.num_nodes)) for s in CURVE_SHARES}),
                            progress=progress)
    mm = (memory_mode_estimate(ds, base, prof, probes, budget, pmem, rows)
          if pmem is not None else None)
    pm = guidance.pmem_guidance(probes, preds, mm, pool_path=placements_pool(pmem))
    best = by_name[preds[0].name]
    feats = ds.layout("features").nbytes
    lo = placements.needed_budget(ds, base, pmem, rows)[0]
    hi = max(budget, int(feats * 1.3) + lo)
    grid = sorted({int(x) for x in np.geomspace(max(lo, 1), hi, sweep_points)} | {budget})
    sw = sweep(ds, base, prof, probes, grid, pmem, rows, progress)
    advice = {
        "dataset": str(dataset), "dram_budget": budget, "pmem": pmem,
        "features_bytes": feats, "feature_row_bytes": prof.row_bytes,
        "settings": {k: v for k, v in base.to_dict().items() if k not in ("progress",)},
        "probes": probes, "profile": prof.figures(), "miss_rate_curve": curve,
        "ranking": [{**q.as_dict(), "settings": by_name[q.name].config(base),
                     "dram_cache_rows": by_name[q.name].dram_cache_rows,
                     "pmem_cache_rows": by_name[q.name].pmem_cache_rows,
                     "tiers": by_name[q.name].tiers} for q in preds],
        "infeasible": [{"name": c.name, "error": c.error} for c in cands if not c.feasible],
        "recommended": preds[0].name, "recommended_settings": best.config(base),
        "memory_mode_seconds": mm, "pmem_guidance": pm, "sweep": sw,
    }
    advice["table"] = report.table(preds, [c for c in cands if not c.feasible])
    if out_dir is not None:
        out = Path(out_dir)
        advice["files"] = {
            "json": str(out / "advice.json"), "config": str(out / "advice.yaml"),
            "plot": str(out / "advice.png")}
        report.write_config(out / "advice.yaml", best.config(base),
                            f"tiered-advise: {preds[0].name}, predicted "
                            f"{preds[0].epoch_seconds:.2f} s per epoch\n"
                            f"run: tiered-train --config {out / 'advice.yaml'}")
        report.plot(out / "advice.png", sw, budget,
                    f"{Path(dataset).name}: predicted epoch time vs DRAM budget")
        report.write_json(out / "advice.json", advice)
    return advice


def placements_pool(pmem: str | None) -> str | None:
    """The pool path of a PATH:SIZE spec (what the PMem probe sits beside)."""
    return None if pmem is None else pmem.rpartition(":")[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tiered-advise", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("dataset", help="dataset directory written by tiered-convert")
    a("--dram-budget", help="DRAM the training run may use [80%% of available memory]")
    a("--pmem", help="PATH:SIZE of a persistent-memory pool (probed beside PATH)")
    a("--ssd", help="directory on the SSD to probe [the dataset's directory, where the SSD "
                    "tier reads]")
    a("--fanouts", default="10,10", help="neighbours per hop, nearest first")
    a("--batch-size", type=int, default=1024)
    a("--model", default="sage", help="sage, gcn, gat or package.module:Class")
    a("--hidden", type=int, default=128)
    a("--superbatch", type=int, default=32)
    a("--seed", type=int, default=0)
    a("--epochs", type=int, default=10, help="written into the config")
    a("--cache-sizes", default="10%,25%",
      help="fixed DRAM cache sizes to compare besides the largest the budget leaves")
    a("--profile-batches", type=int, default=256,
      help="batches sampled for the profile (two epochs' worth gives an exact warm epoch)")
    a("--out", default="advice", help="directory for advice.json, advice.yaml, advice.png")
    a("--reprobe", action="store_true", help="measure the tiers again (ignore the cache)")
    a("--probe-cache", help="directory of cached probe results [~/.cache/tiered]")
    a("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sizes = tuple(s for s in args.cache_sizes.split(",") if s.strip())
        adv = advise(args.dataset, args.dram_budget, args.pmem, args.ssd, args.out, sizes,
                     args.profile_batches, args.reprobe, args.probe_cache,
                     progress=args.progress, fanouts=args.fanouts, batch_size=args.batch_size,
                     model=args.model, hidden=args.hidden, superbatch=args.superbatch,
                     seed=args.seed, epochs=args.epochs)
    except (FileNotFoundError, ValueError, PlacementError) as e:
        print(f"tiered-advise: error: {e}", file=sys.stderr)
        return 2
    prof = adv["profile"]
    print(f"{adv['dataset']}: features {format_size(adv['features_bytes'])}, DRAM budget "
          f"{format_size(adv['dram_budget'])}; {prof['batches_per_epoch']} batches per epoch of "
          f"{prof['rows_per_batch']:.0f} rows; profile window: {prof['window']}")
    print(f"measured per batch: sampling {prof['sample_seconds_per_batch'] * 1e3:.1f} ms, "
          f"model {prof['compute_seconds_per_batch'] * 1e3:.1f} ms; reuse distance median "
          f"{prof['reuse']['median_batches']} batches")
    print(f"accesses per epoch {prof['accesses_per_epoch']:.3g}, distinct rows in the window "
          f"{prof['distinct_rows_in_window']} ({100 * prof['distinct_share_of_nodes']:.1f}% of "
          f"the nodes)")
    for pol, pts in adv["miss_rate_curve"].items():
        print(f"{pol:>6} hit rate vs DRAM cache rows: " + ", ".join(
            f"{p['cache_rows']}: {p['hit_rate']:.2f}" for p in pts))
    print()
    print(adv["table"])
    print()
    print(f"recommended: {adv['recommended']}")
    g = adv["pmem_guidance"]
    if g.get("mode") or adv["pmem"]:
        print(f"persistent memory: {g.get('mode') or 'no advice'}"
              + (f"; bind with `{g['numa_binding']}`" if g.get("numa_binding") else ""))
        for line in g["reasoning"]:
            print(f"  - {line}")
    for k, v in adv.get("files", {}).items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
