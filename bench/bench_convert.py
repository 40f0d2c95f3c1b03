"""Conversion benchmark: generate + convert a large synthetic graph out of core, and measure
wall time, peak RSS (/usr/bin/time -v) against the memory limit, and bytes written.

Run under the machine-wide lock (it uses both cores and tens of GB of disk):

    flock /tmp/tiered-heavy.lock .venv/bin/python bench/bench_convert.py \
        --nodes 100M --edges 1B --dim 128 --dtype float16

The dataset goes to $TIERED_BENCH_DIR/convert (default /work/bigdata/bench/convert) and is
deleted afterwards unless --keep. Several sizes may be given as --nodes 10M,100M
--edges 100M,1B (paired). Prints a table and writes bench/out/bench_convert.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, machine, print_table, write_json  # noqa: E402

from tiered.convert.cli import parse_count  # noqa: E402
from tiered.convert.options import default_memory_limit, format_bytes, parse_size  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
_TIME_FIELDS = {"Maximum resident set size (kbytes)": "peak_rss_kib",
                "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
                "User time (seconds)": "user_s", "System time (seconds)": "system_s",
                "Percent of CPU this job got": "cpu_percent",
                "File system outputs": "fs_output_blocks"}


def _parse_time_v(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key in _TIME_FIELDS:
            out[_TIME_FIELDS[key]] = value.strip()
    parts = [float(p) for p in out["wall"].split(":")]
    out["wall_s"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    out["peak_rss_bytes"] = int(out.pop("peak_rss_kib")) * 1024
    out["cpu_percent"] = float(out["cpu_percent"].rstrip("%"))
    out["user_s"], out["system_s"] = float(out["user_s"]), float(out["system_s"])
    return out


def run_one(nodes: int, edges: int, dim: int, dtype: str, limit: int, workdir: Path,
            keep: bool) -> dict:
    out = workdir / f"synthetic-{nodes}-{edges}"
    summary_path = workdir / f"summary-{nodes}-{edges}.json"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "tiered.convert.cli", "synthetic",
           str(out), "--nodes", str(nodes), "--edges", str(edges), "--dim", str(dim),
           "--dtype", dtype, "--memory-limit", str(limit), "--quiet", "--summary-json",
           str(summary_path)]
    print("$", " ".join(cmd), flush=True)
    free_before = shutil.disk_usage(workdir).free
    t0 = time.time()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(res.stdout, flush=True)
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        raise SystemExit(f"conversion failed with status {res.returncode}")
    timing = _parse_time_v(res.stderr)
    summary = json.loads(summary_path.read_text())
    summary_path.unlink()
    du = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    row = {"nodes": nodes, "edges_requested": edges, "edges_stored": summary["num_edges"],
           "dim": dim, "dtype": dtype, "memory_limit_bytes": limit,
           "wall_s": timing["wall_s"], "peak_rss_bytes": timing["peak_rss_bytes"],
           "rss_under_limit": timing["peak_rss_bytes"] < limit,
           "user_s": timing["user_s"], "system_s": timing["system_s"],
           "cpu_percent": timing["cpu_percent"], "bytes_written": du,
           "array_bytes": summary["array_bytes"], "stage_seconds": summary["stage_seconds"],
           "degree": {"min": summary["degree_min"], "mean": summary["degree_mean"],
                      "max": summary["degree_max"]},
           "split_sizes": summary["split_sizes"], "disk_free_before_bytes": free_before,
           "elapsed_outer_s": time.time() - t0, "command": " ".join(cmd[2:])}
    if not keep:
        shutil.rmtree(out)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", default="10M", help="comma-separated counts, e.g. 10M,100M")
    p.add_argument("--edges", default="100M", help="comma-separated, paired with --nodes")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--memory-limit", default=None, help="default: 50%% of RAM")
    p.add_argument("--workdir", type=Path, default=BENCH_DIR / "convert")
    p.add_argument("--keep", action="store_true", help="keep the generated datasets")
    args = p.parse_args()
    nodes = [parse_count(x) for x in args.nodes.split(",")]
    edges = [parse_count(x) for x in args.edges.split(",")]
    if len(nodes) != len(edges):
        raise SystemExit("--nodes and --edges need the same number of values")
    limit = parse_size(args.memory_limit) if args.memory_limit else default_memory_limit()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = [run_one(n, e, args.dim, args.dtype, limit, args.workdir, args.keep)
            for n, e in zip(nodes, edges)]
    for r in rows:
        r["peak_rss"] = format_bytes(r["peak_rss_bytes"])
        r["written"] = format_bytes(r["bytes_written"])
        r["limit"] = format_bytes(r["memory_limit_bytes"])
    print_table(rows, [("nodes", "nodes", ","), ("edges_stored", "edges", ","),
                       ("dim", "dim", "d"), ("dtype", "dtype", "s"), ("wall_s", "wall s", ".1f"),
                       ("peak_rss", "peak RSS", "s"), ("limit", "limit", "s"),
                       ("written", "written", "s"), ("cpu_percent", "cpu %", ".0f")])
    for r in rows:
        print(f"stages {r['nodes']:,} nodes: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in r["stage_seconds"].items()))
    path = write_json("bench_convert", {"machine": machine(), "runs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
