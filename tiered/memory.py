"""How much RAM this process may use: the machine's, capped by a cgroup memory limit.

Default budgets (tiered-convert's --memory-limit, tiered-train's --dram-budget)
are shares of these, so a container's limit is honoured, not the host's RAM.
"""
from __future__ import annotations

import os
from pathlib import Path

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def _cgroup_capped(nbytes: int) -> int:
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            nbytes = min(nbytes, int(text))
    return nbytes


def physical_memory() -> int:
    """MemTotal, capped by a cgroup limit."""
    return _cgroup_capped(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def available_memory() -> int:
    """MemAvailable (free plus reclaimable page cache), capped by a cgroup limit."""
    avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    return _cgroup_capped(avail)
