"""The README's main job: convert the embedded Cora dataset, then train a GCN on it out of core.

Features stay on the SSD tier (O_DIRECT reads) with a DRAM cache of 10% of the rows managed by
the Belady plan; the run prints per-epoch progress, the cache statistics and the test accuracy.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    out = REPO / "demo-out" / "cora"
    if not (out / "zarr.json").is_file():
        run(str(BIN / "tiered-convert"), "planetoid", str(REPO / "datasets" / "cora"), str(out))
    run(str(BIN / "tiered-train"), str(out), "--model", "gcn", "--hidden", "16", "--dropout", "0.5",
        "--lr", "0.01", "--weight-decay", "5e-4", "--normalize-features", "--fanouts=-1,-1",
        "--batch-size", "140", "--epochs", "200", "--eval-every", "10",
        "--features-on", "ssd", "--cache", "belady", "--cache-size", "10%", "--seed", "0",
        "--metrics", str(REPO / "demo-out" / "metrics.jsonl"))


if __name__ == "__main__":
    main()
