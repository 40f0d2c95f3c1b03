"""Acceptance benchmark of the placement advisor: predicted vs measured epoch time.

1. builds (or reuses) a synthetic dataset whose features exceed the DRAM budget;
2. runs the advisor (tiered.advise.cli.advise) on it: probes (cached per device),
   profile, cost model, ranked table, advice.json / advice.yaml / advice.png under
   bench/out/advise/, and one tiered-train config per placement;
3. trains each selected placement for --epochs epochs in its own process, with the
   Trainer of tiered-train on the config the advisor wrote, and times each
   training epoch (train_epoch: no evaluation). The advisor predicts the warm epoch
   (epoch 1, after a whole epoch 0), so the last epoch is compared;
4. prints predicted vs measured with ratios and writes bench/out/advise.json.

Heavy (about 10 min on 2 cores): run it as

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_advise.py
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from common import machine, print_table, write_json  # noqa: E402

DEFAULT_PLACEMENTS = ("ssd+belady", "ssd+belady @10%", "ssd+lru", "ssd+none", "pmem+belady",
                      "ssd+belady+pmem-cache")


def worker(config: str, epochs: int) -> dict:
    """Train with the config file; seconds of each training epoch and its traffic."""
    from tiered.train import Trainer, make_config
    t0 = time.perf_counter()
    tr = Trainer(make_config(config, epochs=epochs, progress=False, metrics=None))
    setup = time.perf_counter() - t0
    out = []
    try:
        for e in range(epochs):
            t1 = time.perf_counter()
            loss, _acc, st = tr.train_epoch(e)
            out.append({"epoch": e, "seconds": time.perf_counter() - t1, "loss": loss,
                        "hit_rate": st["hit_rate"], "bytes_read": st["bytes_read"],
                        "split": st["seconds"], "tiers": st["tiers"]})
    finally:
        tr.loader.close()
    return {"setup_seconds": setup, "placement": tr.loader.placement.describe(), "epochs": out}


def auto_budget(args) -> str:
    """A budget that holds the graph, the batch buffers and `cache_share` of the features
    (so the features do not fit, and the caches matter)."""
    from tiered.advise.placements import needed_budget, size_text
    from tiered.train.loader import probe_batch_rows
    from tiered.dataset import open_dataset
    from tiered.train import make_config
    ds = open_dataset(args.data)
    base = make_config(dataset=args.data, fanouts=args.fanouts, batch_size=args.batch_size,
                       hidden=args.hidden, model=args.model)
    need, _ = needed_budget(ds, base, None, probe_batch_rows(ds, base))
    budget = need + int(args.cache_share * ds.layout("features").nbytes)
    return size_text(-(-budget // (1 << 20)) << 20)


def build(args) -> None:
    data = Path(args.data)
    if (data / "zarr.json").exists():
        print(f"reusing {data}", flush=True)
        return
    cmd = [sys.executable, "-m", "tiered.convert.cli", "synthetic", str(data),
           "--nodes", str(args.nodes), "--edges", str(args.edges), "--dim", str(args.dim),
           "--split", args.split, "--quiet"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/work/bigdata/advise/syn4m")
    ap.add_argument("--nodes", type=int, default=4_000_000)
    ap.add_argument("--edges", type=int, default=40_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--split", default="0.01,0.001,0.001")
    ap.add_argument("--dram-budget", default="auto",
                    help="auto: the leanest placement's need + --cache-share of the features")
    ap.add_argument("--cache-share", type=float, default=0.35)
    ap.add_argument("--pmem", default="/work/bigdata/advise/pool:2560MiB")
    ap.add_argument("--fanouts", default="10,5")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--model", default="sage")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--time-cap", type=float, default=600.0, help="seconds per placement run")
    ap.add_argument("--placements", default=",".join(DEFAULT_PLACEMENTS),
                    help="advisor placement names to measure (comma-separated)")
    ap.add_argument("--out", default=str(HERE / "out" / "advise"))
    ap.add_argument("--profile-batches", type=int, default=256)
    ap.add_argument("--name", default="advise", help="bench/out/NAME.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs)))
        return

    from tiered.advise.cli import advise
    from tiered.advise.report import write_config
    build(args)
    if args.dram_budget == "auto":
        args.dram_budget = auto_budget(args)
    t0 = time.perf_counter()
    adv = advise(args.data, args.dram_budget, args.pmem, out_dir=args.out,
                 profile_batches=args.profile_batches,
                 fanouts=args.fanouts, batch_size=args.batch_size, hidden=args.hidden,
                 model=args.model, epochs=args.epochs)
    advise_s = time.perf_counter() - t0
    print(adv["table"], flush=True)
    print(f"advisor: {advise_s:.0f} s; recommended {adv['recommended']}", flush=True)
    ranked = {r["name"]: r for r in adv["ranking"]}
    want = [p for p in args.placements.split(",") if p in ranked]
    if adv["recommended"] not in want:
        want.insert(0, adv["recommended"])
    rows = []
    for name in want:
        r = ranked[name]
        cfg = write_config(Path(args.out) / "configs" / f"{name.replace(' ', '_')}.yaml",
                           r["settings"], f"tiered-advise placement {name}")
        t1 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, __file__, "--worker", str(cfg), "--epochs",
                                   str(args.epochs)], capture_output=True, text=True,
                                  timeout=args.time_cap, check=False)
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess([], 124, "", f"timed out after {args.time_cap} s")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        row = {"placement": name, "predicted": r["epoch_seconds"],
               "predicted_hit": r["hit_rates"]["dram_cache"], "bound": r["bound"],
               "terms": r["terms"], "config": str(cfg), "wall": time.perf_counter() - t1}
        if proc.returncode or not lines:
            row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        else:
            res = json.loads(lines[-1])
            ep = res["epochs"]
            row.update(measured=ep[-1]["seconds"], measured_hit=ep[-1]["hit_rate"],
                       cold=ep[0]["seconds"], split=ep[-1]["split"], run=res)
            row["ratio"] = row["predicted"] / row["measured"]
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("run", "terms")}), flush=True)
        write_json(args.name, {"machine": machine(), "args": vars(args), "partial": True,
                              "recommended": adv["recommended"], "results": rows})
    done = [r for r in rows if "measured" in r]
    best = min(done, key=lambda r: r["measured"]) if done else None
    rec = next((r for r in done if r["placement"] == adv["recommended"]), None)
    for r in rows:
        r["pred_s"] = f"{r['predicted']:.1f}"
        r["meas_s"] = f"{r['measured']:.1f}" if "measured" in r else r.get("error", "-")[:40]
        r["cold_s"] = f"{r['cold']:.1f}" if "cold" in r else "-"
        r["ratio_s"] = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        r["ok"] = ("yes" if abs(r["ratio"] - 1) <= 0.25 else "no") if "ratio" in r else "-"
        r["hits"] = (f"{r['predicted_hit']:.3f} / {r['measured_hit']:.3f}"
                     if "measured_hit" in r else "-")
    print()
    print_table(rows, [("placement", "placement", ""), ("pred_s", "predicted s", ""),
                       ("meas_s", f"measured s (epoch {args.epochs - 1})", ""),
                       ("ratio_s", "pred/meas", ""), ("ok", "within 25%", ""),
                       ("hits", "DRAM hit pred / meas", ""), ("cold_s", "epoch 0 s", ""),
                       ("bound", "bound", "")])
    within = sum(1 for r in done if abs(r["ratio"] - 1) <= 0.25)
    print(f"\n{within} of {len(done)} placements predicted within 25% (goal: >= 4)")
    verdict = None
    if rec and best:
        verdict = rec["measured"] / best["measured"]
        print(f"recommended {rec['placement']}: {rec['measured']:.1f} s measured; best measured "
              f"{best['placement']}: {best['measured']:.1f} s; ratio {verdict:.3f} (goal <= 1.10)")
    write_json(args.name, {"machine": machine(), "args": vars(args), "advisor_seconds": advise_s,
                          "recommended": adv["recommended"], "advice_table": adv["table"],
                          "pmem_guidance": adv["pmem_guidance"], "within_25": within,
                          "recommended_vs_best": verdict, "results": rows})


if __name__ == "__main__":
    main()
