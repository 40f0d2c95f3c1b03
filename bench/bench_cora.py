"""Cora acceptance: tiered-train with features on the SSD tier and a 10% DRAM cache, 5 seeds.

Converts ../shared/datasets/planetoid-cora (standard Planetoid split) when needed, trains
GCN (Kipf & Welling's settings: hidden 16, dropout 0.5, lr 0.01, weight decay 5e-4, 200
epochs, full neighbourhoods, row-normalised features) once per seed, and reports the test accuracy of the epoch with
the best validation accuracy, per seed and averaged. Writes bench/out/cora_<model>.json.

    python bench/bench_cora.py [--model gcn|sage] [--seeds 5] [--epochs 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import OUT_DIR, machine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tiered.train import Trainer, make_config  # noqa: E402

CORA_RAW = REPO.parent / "shared" / "datasets" / "planetoid-cora"


def cora_dataset(out: Path) -> Path:
    if not (out / "zarr.json").is_file():
        from tiered.convert.planetoid import convert_planetoid
        convert_planetoid(CORA_RAW, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gcn")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--data", default="/work/bigdata/bench/cora")
    args = ap.parse_args()
    ds = cora_dataset(Path(args.data))
    runs = []
    for seed in range(args.seeds):
        cfg = make_config(dataset=str(ds), model=args.model, hidden=16, dropout=0.5, lr=0.01,
                          weight_decay=5e-4, normalize_features=True, fanouts=[-1, -1],
                          batch_size=140,
                          epochs=args.epochs, features_on="ssd", cache="belady",
                          cache_size="10%", seed=seed, progress=False)
        t0 = time.perf_counter()
        tr = Trainer(cfg)
        try:
            tr.fit()
        finally:
            tr.loader.close()
        run = {"seed": seed, "best_val_acc": tr.best_val, "best_epoch": tr.best_epoch,
               "test_acc": tr.test_at_best, "last_test_acc": tr.history[-1].test_acc,
               "seconds": time.perf_counter() - t0,
               "features_on": tr.loader.placement.features_on,
               "cache_rows": tr.loader.placement.cache_rows,
               "hit_rate": statistics.mean(r.hit_rate for r in tr.history)}
        print(json.dumps(run), flush=True)
        runs.append(run)
    accs = [r["test_acc"] for r in runs]
    summary = {"model": args.model, "epochs": args.epochs, "seeds": args.seeds,
               "mean_test_acc": statistics.mean(accs),
               "std_test_acc": statistics.pstdev(accs), "runs": runs, "machine": machine(),
               "settings": cfg.to_dict()}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"cora_{args.model}.json").write_text(json.dumps(summary, indent=2))
    print(f"{args.model}: mean test accuracy {summary['mean_test_acc']:.4f} "
          f"(std {summary['std_test_acc']:.4f}) over {args.seeds} seeds; features on "
          f"{runs[0]['features_on']}, DRAM cache {runs[0]['cache_rows']} rows of 2708")


if __name__ == "__main__":
    main()
