"""Without libpmemobj the package imports and plans; asking for a pool names the package to install."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from node_data import make_node_dataset

CHILD = """
import sys
import tiered.tiers.pmemobj as m
m.LIBS = ('libpmemobj-absent.so.1', 'libpmem-absent.so.1')     # as if PMDK were not installed
from tiered.manager import TierManager
from tiered.tiers.pmem import PMemPool, PMemUnavailable
assert not m.available()
mgr = TierManager(sys.argv[1], '1GiB', sys.argv[2] + ':64MiB', place={'features': 'pmem'})
assert mgr.plan().tiers['features'] == 'pmem'            # planning needs no library
for attempt in (lambda: PMemPool.create(sys.argv[2], 1 << 30), mgr.open):
    try:
        attempt()
    except PMemUnavailable as e:
        print(e)
with TierManager(sys.argv[1], '1GiB') as plain:                # everything else works
    print('dram tiers:', len(plain.open()))
"""


def test_missing_library_names_the_package(tmp_path):
    make_node_dataset(tmp_path / "ds", n=500)
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "ds"), str(tmp_path / "p.pool")],
                         capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert res.stdout.count("apt-get install libpmemobj1") == 2, res.stdout + res.stderr
    assert "dram tiers: 7" in res.stdout, res.stdout + res.stderr
    assert not (tmp_path / "p.pool").exists()
