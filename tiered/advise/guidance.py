"""Persistent-memory guidance: App Direct or Memory Mode, and which NUMA binding.

Memory Mode turns DRAM into a hardware cache (direct-mapped, 64 B lines) in front of
PMem: the process sees PMem's capacity as ordinary memory and tiered would place
the features "in DRAM". App Direct leaves DRAM as DRAM and PMem as a pool that
tiered places arrays in and plans a cache level over (Belady with the future of
each superbatch). The decision compares two predictions from the same measured
figures:

* App Direct: the best predicted placement that uses the pool;
* Memory Mode: the "features in DRAM" placement, plus, for every row that a DRAM
  cache of the budget's size would miss, the difference between a PMem and a DRAM
  row read. The miss count is LRU's at that size: a direct-mapped cache does no
  better than LRU, so this estimate is optimistic for Memory Mode.

NUMA: /sys/devices/system/node lists the nodes; memory-only nodes (no CPUs) are
how PMem onlined as system memory (KMEM DAX) appears. With one node there is nothing to bind.
"""
from __future__ import annotations

from pathlib import Path

from ..units import format_size

NODE_ROOT = Path("/sys/devices/system/node")
TIE = 0.05              # predictions this close are a tie


def numa_nodes(root: Path = NODE_ROOT) -> list[dict]:
    """[{node, cpus, mem_bytes}] from sysfs (empty when sysfs has no NUMA information)."""
    out = []
    for d in sorted(root.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        cpus = (d / "cpulist").read_text().strip() if (d / "cpulist").exists() else ""
        mem = 0
        meminfo = d / "meminfo"
        if meminfo.exists():
            for line in meminfo.read_text().splitlines():
                if "MemTotal:" in line:
                    mem = int(line.split()[-2]) * 1024
        out.append({"node": int(d.name[4:]), "cpus": cpus, "mem_bytes": mem})
    return out


def pmem_numa_node(pool_path: str | None) -> int | None:
    """The NUMA node of the first persistent-memory region (ndctl's sysfs), if any."""
    for p in sorted(Path("/sys/bus/nd/devices").glob("region*/numa_node")):
        try:
            return int(p.read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def pmem_guidance(probes: dict, preds: list, memory_mode_seconds: float | None,
                  nodes: list[dict] | None = None, pool_path: str | None = None) -> dict:
    """Mode and binding advice with the reasoning, from probe figures and predictions.

    `preds`: ranked predictions (cost.Prediction); `memory_mode_seconds`: the Memory Mode
    estimate (see module doc) or None when the features-in-DRAM figures are missing."""
    pm, dram = probes.get("pmem"), probes["dram"]
    if pm is None:
        return {"mode": None, "reasoning": ["no PMem pool given (--pmem): nothing to decide"]}
    nodes = numa_nodes() if nodes is None else nodes
    why = []
    if pm.get("emulated"):
        why.append(f"the pool is an ordinary file ({pm.get('persistence')}), not Optane: "
                   "the PMem figures below are the page cache's, which real Optane does not "
                   "match; run tiered-advise again on the real device before choosing a mode")
    why.append(f"measured: DRAM {dram['latency_us']:.1f} us per one-row call, "
               f"{dram['sequential_MBps']:.0f} MB/s copy; PMem {pm['latency_us']:.1f} us, "
               f"{pm['sequential_MBps']:.0f} MB/s read, {pm['write_MBps']:.0f} MB/s flushed write")
    app = next((q for q in preds if "pmem" in q.name), None)
    mode = None
    if app is None:
        why.append("no placement that uses the pool fits; App Direct cannot help this budget")
        mode = "memory-mode" if memory_mode_seconds is not None else None
    elif memory_mode_seconds is None:
        mode = "app-direct"
        why.append(f"App Direct: best pool placement {app.name} predicts "
                   f"{app.epoch_seconds:.2f} s per epoch; Memory Mode could not be estimated")
    else:
        why.append(f"App Direct: {app.name} predicts {app.epoch_seconds:.2f} s per epoch "
                   f"(tiered places the rows in the pool and plans the caches over it)")
        why.append(f"Memory Mode: features in (PMem-backed) memory, DRAM as a hardware cache, "
                   f"predicts {memory_mode_seconds:.2f} s (LRU misses at the DRAM size priced "
                   f"at PMem's row cost; optimistic for a direct-mapped cache)")
        mode = "app-direct" if app.epoch_seconds <= memory_mode_seconds else "memory-mode"
        lo, hi = sorted((app.epoch_seconds, memory_mode_seconds))
        if hi <= lo * (1 + TIE):
            mode = "app-direct"
            why.append(f"the two are within {TIE:.0%} ({lo:.2f} vs {hi:.2f} s): either fits; "
                       "App Direct keeps the placement and the durable arrays under tiered's "
                       "control")
        else:
            why.append(f"so {mode.replace('-', ' ')} fits this workload ({lo:.2f} vs {hi:.2f} s)")
    cpu_nodes = [n for n in nodes if n["cpus"]]
    mem_only = [n for n in nodes if not n["cpus"]]
    pnode = pmem_numa_node(pool_path)
    if len(nodes) <= 1:
        binding = None
        why.append(f"NUMA: {len(nodes) or 'no'} node(s) in {NODE_ROOT} "
                   f"({format_size(nodes[0]['mem_bytes']) if nodes else '?'}): nothing to bind; "
                   "on a two-socket Optane machine, bind to the socket whose DIMMs hold the pool")
    else:
        target = pnode if pnode is not None else cpu_nodes[0]["node"]
        binding = f"numactl --cpunodebind={target} --membind={target}"
        why.append(f"NUMA: {len(nodes)} nodes ({len(mem_only)} memory-only); the pool's region "
                   f"is on node {pnode if pnode is not None else 'unknown'}: run `{binding} "
                   "tiered-train ...` so DRAM and the PMem reads stay local (probe from the "
                   "other node to see what a remote binding costs)")
    return {"mode": mode, "numa_binding": binding, "numa_nodes": nodes,
            "pmem_numa_node": pnode, "emulated": bool(pm.get("emulated")), "reasoning": why}
