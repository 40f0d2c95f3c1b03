"""Without libpmemobj the package imports and plans; asking for a pool names the package to install.
The environment libpmemobj reads is settled before it loads, with or without the library."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node_data import make_node_dataset
from tiered.tiers import pmemobj

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


@pytest.mark.parametrize("conf,msync,want_conf,want_force", [
    (None, None, "sds.at_create=0", "1"),                           # PMDK >= 2.1 on a plain file
    ("prefault.at_open=1", None, "prefault.at_open=1;sds.at_create=0", "1"),
    ("sds.at_create=1", None, "sds.at_create=1", "1"),              # the user's choice stands
    (None, "1", "sds.at_create=0", None),                           # TIERED_PMEM_MSYNC: real msync
])
def test_environment_is_settled_before_the_library_loads(monkeypatch, conf, msync, want_conf,
                                                         want_force):
    for name, value in (("PMEMOBJ_CONF", conf), (pmemobj.MSYNC_ENV, msync),
                        ("PMEM_IS_PMEM_FORCE", None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    pmemobj._settle_environment()
    assert os.environ["PMEMOBJ_CONF"] == want_conf
    assert os.environ.get("PMEM_IS_PMEM_FORCE") == want_force
