"""Helpers shared by the benchmark scripts: cold caches, the fio floor, tables and JSON."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

BENCH_DIR = Path(os.environ.get("TIERED_BENCH_DIR", "/work/bigdata/bench"))
OUT_DIR = Path(__file__).resolve().parent / "out"


def drop_file_cache(path: str | os.PathLike) -> None:
    """Evict a file's pages: posix_fadvise DONTNEED, plus the global drop when root."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def drop_all_caches() -> bool:
    """echo 1 > /proc/sys/vm/drop_caches (root only); True when it worked."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def fio_randread(path: str | os.PathLike, bs: int = 4096, iodepth: int = 32,
                 seconds: int = 15) -> dict | None:
    """The device floor: fio random reads, io_uring, O_DIRECT. None when fio is absent."""
    if not shutil.which("fio"):
        return None
    cmd = ["fio", "--name=floor", f"--filename={path}", "--rw=randread", f"--bs={bs}",
           "--ioengine=io_uring", f"--iodepth={iodepth}", "--direct=1", "--numjobs=1",
           f"--runtime={seconds}", "--time_based", "--group_reporting", "--output-format=json",
           "--readonly"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    job = json.loads(res.stdout)["jobs"][0]["read"]
    return {"iops": job["iops"], "MBps": job["bw_bytes"] / 1e6, "bs": bs, "iodepth": iodepth,
            "seconds": seconds, "command": " ".join(cmd)}


def machine() -> dict:
    return {"host": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format spec)."""
    widths = [max(len(h), *(len(format(r.get(k, ""), f)) for r in rows)) for k, h, f in columns]
    print("  ".join(h.rjust(w) for (k, h, f), w in zip(columns, widths)))
    for r in rows:
        print("  ".join(format(r.get(k, ""), f).rjust(w) for (k, h, f), w in zip(columns, widths)))


def write_json(name: str, payload: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
