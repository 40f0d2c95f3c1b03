"""Gowalla acceptance for the GNN recommender: LightGCN with its table on the SSD vs all in DRAM.

Converts ../shared/datasets/gowalla (train_full_lightgcn.txt, test.txt) once, then trains
LightGCN (3 layers, dim 64, SparseAdam, BPR, L2 1e-4) twice with the same seed and epochs:
the embedding table (with its Adam state) in DRAM, and on the SSD tier with a Belady DRAM
cache of 25% of its rows. Prints the learning curves (recall@20 and ndcg@20 against epoch
and training seconds) side by side, the first epoch and time at which each run reaches
--target, and the largest gap between the two runs' metrics; writes bench/out/gowalla.json.

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_gowalla.py

About 15 min (DRAM) + 35 min (SSD) on a 2-core machine. --report-only re-reads the metrics
files of an earlier run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import BENCH_DIR, machine, print_table, write_json  # noqa: E402

REPO = HERE.parent
SOURCE = REPO.parent / "shared" / "datasets" / "gowalla"


def convert(out: Path) -> None:
    """The LightGCN-format Gowalla as a tiered dataset (train_full for training)."""
    if (out / "zarr.json").exists():
        return
    subprocess.run([sys.executable, "-m", "tiered.convert.cli", "lightgcn", str(SOURCE), str(out),
                    "--train", "train_full_lightgcn.txt", "--overwrite"], check=True)


def train(data: Path, run: str, args, workdir: Path) -> Path:
    """One tiered-train --task link run; returns its metrics file (one JSON line per epoch)."""
    metrics = workdir / f"{run}.jsonl"
    metrics.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tiered.train.cli", "--task", "link", str(data),
           "--layers", "3", "--dim", "64", "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--lr-decay", str(args.lr_decay), "--seed", str(args.seed), "--epochs", str(args.epochs),
           "--eval-every", str(args.eval_every), "--no-progress", "--metrics", str(metrics)]
    if run == "ssd":
        cmd += ["--embeddings-on", "ssd", "--cache", "belady", "--cache-size", args.cache_size,
                "--table-dir", str(workdir / "tables")]
    else:
        cmd += ["--embeddings-on", "dram"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return metrics


def curve(metrics: Path) -> list[dict]:
    """The evaluated epochs of a metrics file: epoch, training seconds, recall, ndcg."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return [{"epoch": r["epoch"], "train_s": r["train_seconds"], "epoch_s": r["epoch_seconds"],
             "recall": r["recall"], "ndcg": r["ndcg"]} for r in rows if r.get("recall") is not None]


def first_reaching(points: list[dict], target: float) -> dict | None:
    return next((p for p in points if p["recall"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=32768)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--lr-decay", type=float, default=0.985)
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-size", default="25%")
    ap.add_argument("--target", type=float, default=0.16)
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "gowalla-run")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    data = BENCH_DIR / "gowalla"
    if not args.report_only:
        convert(data)
        for run in ("dram", "ssd"):
            train(data, run, args, args.workdir)
    curves = {run: curve(args.workdir / f"{run}.jsonl") for run in ("dram", "ssd")}
    by_epoch = {p["epoch"]: p for p in curves["ssd"]}
    rows = [{"epoch": d["epoch"], "dram_s": d["train_s"], "dram_recall": d["recall"],
             "dram_ndcg": d["ndcg"], "ssd_s": by_epoch[d["epoch"]]["train_s"],
             "ssd_recall": by_epoch[d["epoch"]]["recall"], "ssd_ndcg": by_epoch[d["epoch"]]["ndcg"]}
            for d in curves["dram"] if d["epoch"] in by_epoch]
    print_table(rows, [("epoch", "epoch", "d"), ("dram_s", "DRAM s", ".0f"),
                       ("dram_recall", "DRAM recall@20", ".4f"), ("dram_ndcg", "DRAM ndcg@20", ".4f"),
                       ("ssd_s", "SSD s", ".0f"), ("ssd_recall", "SSD recall@20", ".4f"),
                       ("ssd_ndcg", "SSD ndcg@20", ".4f")])
    gap = max((max(abs(r["dram_recall"] - r["ssd_recall"]), abs(r["dram_ndcg"] - r["ssd_ndcg"]))
               for r in rows), default=None)
    reached = {run: first_reaching(c, args.target) for run, c in curves.items()}
    for run, p in reached.items():
        where = f"epoch {p['epoch']} after {p['train_s']:.0f} s of training" if p else "not reached"
        print(f"{run}: recall@20 >= {args.target}: {where}; final {curves[run][-1]['recall']:.4f}")
    print(f"largest |DRAM - SSD| gap in recall@20 or ndcg@20 at the same epoch: {gap}")
    write_json("gowalla", {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                           "curves": curves, "reached": reached, "max_gap": gap})


if __name__ == "__main__":
    main()
