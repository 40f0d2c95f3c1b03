"""Tier probes: what each device of this machine does with tiered's own read and write paths.

Every figure comes from the real tier classes (DRAMTier, PMemTier, SSDTier and its
native O_DIRECT reader), so the cost model prices exactly the calls the executor
makes. Each probe is short and bounded (a measurement repeats for at most
`_MEASURE_SECONDS`), and its result is cached as JSON per device, keyed by the
filesystem's st_dev, the path and the filesystem type, so later runs reuse it
(`reprobe=True` measures again).

Figures per tier (lists of dicts, so the JSON reads on its own):
  random_reads   random row gathers: row_bytes x rows per call (x queue depth on SSD),
                 wall seconds and CPU seconds per row
  writes         row writes (DRAM scatter, PMem cache copy, PMem transaction)
  sequential_MBps, write_MBps, latency_us (one row per call, one request in flight)
"""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..format import ArrayLayout, ArrayWriter
from ..tiers.dram import DRAMTier

PROBE_VERSION = 1
_MEASURE_SECONDS = 0.4          # each measurement repeats until this much time has passed
_MAX_REPS = 50
MEM_ROW_BYTES = (128, 512, 2048, 8192)
MEM_ROWS = (4096, 65536)
SSD_ROW_BYTES = (512, 4096, 16384)
SSD_ROWS = (256, 4096, 32768)
SSD_QUEUE_DEPTHS = (1, 8, 64)
SSD_DEFAULT_QD = 64             # SSDTier's default queue depth: what the executor uses


def default_cache_dir() -> Path:
    """Where probe results are kept: $TIERED_CACHE_DIR, else ~/.cache/tiered."""
    return Path(os.environ.get("TIERED_CACHE_DIR", Path.home() / ".cache" / "tiered"))


def filesystem_of(path: str | os.PathLike) -> tuple[str, str]:
    """(mount point, filesystem type) of the longest /proc/mounts entry holding `path`."""
    real = os.path.realpath(path)
    best, fstype = "/", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            mnt = parts[1].replace("\\040", " ")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, fstype = mnt, parts[2]
    except OSError:
        pass
    return best, fstype


def device_key(kind: str, path: str | os.PathLike | None) -> tuple[str, dict]:
    """A file-name-safe key for a probed device and what it was derived from."""
    if path is None:                      # DRAM: the machine itself
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        info = {"host": platform.node(), "cpus": os.cpu_count(), "mem_bytes": mem}
        return f"{kind}-{platform.node()}-{os.cpu_count()}cpu-{mem >> 30}g", info
    p = Path(path)
    anchor = p if p.exists() else p.parent
    st = os.stat(anchor)
    mount, fstype = filesystem_of(anchor)
    real = os.path.realpath(p)
    info = {"path": real, "st_dev": st.st_dev, "mount": mount, "filesystem": fstype}
    slug = real.strip("/").replace("/", "_") or "root"
    return f"{kind}-dev{st.st_dev}-{fstype}-{slug}", info


def cached_probe(kind: str, path: str | os.PathLike | None, run: Callable[[], dict], *,
                 cache_dir: str | os.PathLike | None = None, reprobe: bool = False) -> dict:
    """The probe result for (kind, device): from the cache file when present and not
    `reprobe`, else `run()` stored there. The result says which (`cached`)."""
    key, info = device_key(kind, path)
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    file = cdir / f"probe-{key}.json"
    if file.is_file() and not reprobe:
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError:
            data = None
        if data and data.get("version") == PROBE_VERSION:
            data["cached"] = True
            data["cache_file"] = str(file)
            return data
    data = run()
    data.update(version=PROBE_VERSION, kind=kind, key=key, device=info,
                measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    cdir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(file)
    data["cached"] = False
    data["cache_file"] = str(file)
    return data


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn: Callable, *args, seconds: float = _MEASURE_SECONDS,
            max_reps: int = _MAX_REPS) -> tuple[float, float]:
    """(wall, CPU) seconds per call of `fn(*args)`, after one warm-up call, repeated until
    `seconds` passed or `max_reps` calls. CPU counts every thread of the process."""
    fn(*args)
    reps, t0, c0 = 0, time.perf_counter(), _cpu()
    while reps < max_reps:
        fn(*args)
        reps += 1
        if time.perf_counter() - t0 >= seconds:
            break
    return (time.perf_counter() - t0) / reps, (_cpu() - c0) / reps


def _row_entry(rb: int, n: int, wall: float, cpu: float, **extra) -> dict:
    return {"row_bytes": rb, "rows": n, "seconds_per_row": wall / n, "cpu_per_row": cpu / n,
            "MBps": rb * n / wall / 1e6, **extra}


# ---- DRAM --------------------------------------------------------------------------------
def probe_dram(nbytes: int = 256 << 20, progress=None) -> dict:
    """Random gathers and scatters through DRAMTier (the executor's assembly and cache-move
    kernels are the same numba row copies), sequential copy bandwidth, one-row latency."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, nbytes, dtype=np.uint8)
    reads, writes = [], []
    for rb in MEM_ROW_BYTES:
        tier = DRAMTier(base[: nbytes // rb * rb].reshape(-1, rb), name="probe", pin=False)
        for n in MEM_ROWS:
            n = min(n, tier.num_rows)
            ids = rng.integers(0, tier.num_rows, n)
            out = np.empty((n, rb), np.uint8)
            reads.append(_row_entry(rb, n, *measure(tier.read_rows, ids, out)))
            uniq = rng.choice(tier.num_rows, n, replace=False)
            writes.append(_row_entry(rb, n, *measure(tier.write_rows, uniq, out)))
            _tick(progress)
    dst = np.empty_like(base)
    wall, _ = measure(np.copyto, dst, base, max_reps=5)
    tier = DRAMTier(base[: nbytes // 512 * 512].reshape(-1, 512), name="probe", pin=False)
    one = np.empty((1, 512), np.uint8)
    lat = _latency(lambda i: tier.read_rows(np.array([i]), one), tier.num_rows, rng)
    return {"tier": "dram", "random_reads": reads, "writes": writes,
            "sequential_MBps": nbytes / wall / 1e6, "write_MBps": nbytes / wall / 1e6,
            "latency_us": lat}


def _latency(call: Callable[[int], None], num_rows: int, rng, calls: int = 300) -> float:
    """Median microseconds of one-row reads at random places (one request in flight)."""
    times = []
    for i in rng.integers(0, num_rows, calls):
        t0 = time.perf_counter()
        call(int(i))
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


def _tick(progress) -> None:
    if progress is not None:
        progress.update(1)


# ---- SSD ---------------------------------------------------------------------------------
def probe_ssd(directory: str | os.PathLike, nbytes: int = 1 << 30, progress=None) -> dict:
    """Write a probe file of `nbytes` in `directory` (write bandwidth, fsync included), then
    read it through SSDTier: random rows at several row sizes, rows per call and queue
    depths; sequential runs; one-row latency. The file is removed afterwards."""
    from ..tiers.ssd import PAGE_BYTES, SSDTier
    root = Path(directory) / f".tiered-probe-{os.getpid()}"
    if root.exists():
        shutil.rmtree(root)
    nbytes = max(64 << 20, nbytes // (16 << 20) * (16 << 20))
    block = 16 << 20
    rng = np.random.default_rng(0)
    try:
        t0 = time.perf_counter()
        with ArrayWriter(root, "probe", (nbytes // 4096, 4096), np.uint8,
                         chunk_bytes=nbytes) as w:
            for _ in range(nbytes // block):
                w.write(np.frombuffer(rng.bytes(block), np.uint8).reshape(-1, 4096))
        for p in w.layout.chunk_paths():
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        write_mbps = nbytes / (time.perf_counter() - t0) / 1e6
        _tick(progress)

        def tier(rb: int, qd: int) -> SSDTier:
            lay = ArrayLayout("probe", root / "probe", (nbytes // rb, rb), np.dtype(np.uint8),
                              nbytes // rb)
            return SSDTier(lay, queue_depth=qd)

        reads, seen = [], set()
        grid = ([(rb, 4096, SSD_DEFAULT_QD) for rb in SSD_ROW_BYTES]
                + [(4096, n, SSD_DEFAULT_QD) for n in SSD_ROWS]
                + [(4096, 4096, qd) for qd in SSD_QUEUE_DEPTHS])
        direct = backend = None
        for rb, n, qd in grid:
            if (rb, n, qd) in seen:
                continue
            seen.add((rb, n, qd))
            with tier(rb, qd) as t:
                direct, backend = t.direct, t.backend
                # unique random rows: each costs ceil(rb / page) pages, spread over the file
                ids = np.sort(rng.choice(t.num_rows, n, replace=False))
                out = np.empty((n, rb), np.uint8)
                before = t.stats.bytes_read
                wall, cpu = measure(t.read_rows, ids, out,
                                    max_reps=_MAX_REPS if qd > 1 else 3)
                calls = t.stats.read_requests
                pages = (t.stats.bytes_read - before) / max(calls, 1) / PAGE_BYTES
            reads.append(_row_entry(rb, n, wall, cpu, queue_depth=qd,
                                    pages_per_row=pages / n, iops=pages / wall))
            _tick(progress)
        rb_seq = 4096
        n_seq = min(32768, nbytes // rb_seq)
        with tier(rb_seq, SSD_DEFAULT_QD) as t:
            ids = np.arange(n_seq)
            out = np.empty((n_seq, rb_seq), np.uint8)
            wall, cpu = measure(t.read_rows, ids, out, max_reps=10)
            seq = n_seq * rb_seq / wall / 1e6
            one = np.empty((1, rb_seq), np.uint8)
            lat = _latency(lambda i: t.read_rows(np.array([i]), one), t.num_rows, rng, 200)
        _tick(progress)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"tier": "ssd", "random_reads": reads, "sequential_MBps": seq,
            "sequential_cpu_per_byte": cpu / (n_seq * rb_seq), "write_MBps": write_mbps,
            "latency_us": lat, "page_bytes": PAGE_BYTES, "direct": direct, "backend": backend,
            "file_bytes": nbytes}


# ---- PMem --------------------------------------------------------------------------------
def probe_pmem(pool_path: str | os.PathLike, nbytes: int = 192 << 20, progress=None) -> dict:
    """A scratch pool beside `pool_path` (never the user's pool): load bandwidth (flushing
    copies), random gathers, cache writes (plain copies) and transactional writes (what
    embeddings and optimizer state cost) through PMemTier. Removed afterwards."""
    from ..tiers.pmem import PMemPool, pool_size_for
    path = Path(pool_path)
    probe_file = (path.parent if not path.is_char_device() else Path("/tmp")) / \
        f".tiered-probe-{os.getpid()}.pool"
    if probe_file.exists():
        probe_file.unlink()
    rng = np.random.default_rng(0)
    per = nbytes // len(MEM_ROW_BYTES)
    reads, writes = [], []
    try:
        with PMemPool.create(probe_file, pool_size_for(nbytes * 3 // 2 + (128 << 20))) as pool:
            load_s = 0.0
            for rb in MEM_ROW_BYTES:
                name = f"r{rb}"
                pool.create_array(name, (per // rb, rb), np.uint8)
                t0 = time.perf_counter()
                pool.tier(name).load(np.frombuffer(rng.bytes(per // rb * rb), np.uint8)
                                     .reshape(-1, rb))
                load_s += time.perf_counter() - t0
            for rb in MEM_ROW_BYTES:
                t = pool.tier(f"r{rb}")
                for n in MEM_ROWS:
                    n = min(n, t.num_rows)
                    ids = rng.integers(0, t.num_rows, n)
                    out = np.empty((n, rb), np.uint8)
                    reads.append(_row_entry(rb, n, *measure(t.read_rows, ids, out)))
                    _tick(progress)
            for rb in MEM_ROW_BYTES:
                name = f"s{rb}"
                pool.create_array(name, (per // 4 // rb, rb), np.uint8)
                scratch = pool.tier(name, durable=False)
                durable = pool.tier(f"r{rb}")
                n = min(MEM_ROWS[-1], scratch.num_rows)
                uniq = rng.choice(scratch.num_rows, n, replace=False)
                rows = np.empty((n, rb), np.uint8)
                writes.append(_row_entry(rb, n, *measure(scratch.write_rows, uniq, rows),
                                         durable=False))
                m = min(4096, n)
                writes.append(_row_entry(rb, m, *measure(durable.write_rows, uniq[:m], rows[:m],
                                                 max_reps=5), durable=True))
                _tick(progress)
            t = pool.tier("r512")
            one = np.empty((1, 512), np.uint8)
            lat = _latency(lambda i: t.read_rows(np.array([i]), one), t.num_rows, rng)
            seq_wall, _ = measure(t.read_rows, np.arange(t.num_rows),
                                  np.empty((t.num_rows, 512), np.uint8), max_reps=5)
            info = {"is_pmem": pool.is_pmem, "persistence": pool.persistence}
    finally:
        if probe_file.exists():
            probe_file.unlink()
    loaded = sum(per // rb * rb for rb in MEM_ROW_BYTES)
    return {"tier": "pmem", "random_reads": reads, "writes": writes,
            "sequential_MBps": per // 512 * 512 / seq_wall / 1e6,
            "write_MBps": loaded / load_s / 1e6, "latency_us": lat, **info,
            "emulated": not info["is_pmem"]}


def probe_count(kind: str) -> int:
    """Steps of a probe, for its progress bar."""
    if kind == "dram":
        return len(MEM_ROW_BYTES) * len(MEM_ROWS)
    if kind == "ssd":
        return len(set([(rb, 4096, 64) for rb in SSD_ROW_BYTES] + [(4096, n, 64) for n in SSD_ROWS]
                       + [(4096, 4096, q) for q in SSD_QUEUE_DEPTHS])) + 2
    return len(MEM_ROW_BYTES) * (len(MEM_ROWS) + 1)


def probe_tiers(ssd_dir: str | os.PathLike, pmem_path: str | os.PathLike | None = None, *,
                cache_dir: str | os.PathLike | None = None, reprobe: bool = False,
                ssd_bytes: int = 1 << 30, progress: bool = True) -> dict:
    """Probe DRAM, the SSD holding `ssd_dir` and (if given) the PMem pool's device, each
    cached per device. Returns {"dram": ..., "ssd": ..., "pmem": ... or None}."""
    from tqdm import tqdm
    out: dict[str, dict | None] = {"pmem": None}
    jobs = [("dram", None, lambda bar: probe_dram(progress=bar)),
            ("ssd", ssd_dir, lambda bar: probe_ssd(ssd_dir, ssd_bytes, progress=bar))]
    if pmem_path is not None:
        jobs.append(("pmem", pmem_path, lambda bar: probe_pmem(pmem_path, progress=bar)))
    for kind, path, fn in jobs:
        def run(kind=kind, fn=fn) -> dict:
            with tqdm(total=probe_count(kind), desc=f"probe {kind}", unit="step", leave=False,
                      disable=not progress) as bar:
                return fn(bar)
        out[kind] = cached_probe(kind, path, run, cache_dir=cache_dir, reprobe=reprobe)
    return out


# ---- lookups the cost model uses ------------------------------------------------------------
def _interp_log(x: float, xs: list[float], ys: list[float]) -> float:
    """Piecewise-linear in log x, clamped at the ends."""
    if len(xs) == 1:
        return ys[0]
    lx = np.log(np.maximum(np.asarray(xs, float), 1.0))
    return float(np.interp(np.log(max(x, 1.0)), lx, ys))


def row_cost(entries: list[dict], row_bytes: int, rows: float, key: str = "seconds_per_row",
             **match) -> float:
    """Per-row seconds (`key`) for reading/writing `rows` rows of `row_bytes` in one call,
    interpolated over the probed rows per call and row sizes (log scale); rows wider than
    the widest probed cost proportionally more (bandwidth-bound)."""
    sel = [e for e in entries if all(e.get(k) == v for k, v in match.items())]
    if not sel:
        raise ValueError(f"no probe figures for {match or 'this tier'}")
    sizes = sorted({e["row_bytes"] for e in sel})
    per_size = []
    for rb in sizes:
        es = sorted((e for e in sel if e["row_bytes"] == rb), key=lambda e: e["rows"])
        per_size.append(_interp_log(rows, [e["rows"] for e in es], [e[key] for e in es]))
    if row_bytes > sizes[-1]:
        return per_size[-1] * row_bytes / sizes[-1]
    return _interp_log(row_bytes, sizes, per_size)


def ssd_request_cost(ssd: dict, requests: float, key: str = "seconds_per_row") -> float:
    """Seconds (or CPU seconds) per random one-page request when a call issues
    `requests` of them at the executor's queue depth."""
    return row_cost(ssd["random_reads"], ssd["page_bytes"], requests, key,
                    queue_depth=SSD_DEFAULT_QD)
