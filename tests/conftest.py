"""Shared fixtures: small on-disk arrays and a directory whose filesystem refuses O_DIRECT."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def _refuses_direct(directory: str) -> bool:
    probe = os.path.join(directory, ".odirect-probe")
    with open(probe, "wb") as f:
        f.write(b"\0" * 4096)
    try:
        os.close(os.open(probe, os.O_RDONLY | os.O_DIRECT))
        return False
    except OSError:
        return True
    finally:
        os.unlink(probe)


@pytest.fixture
def no_direct_dir():
    """A directory on a filesystem that refuses O_DIRECT.

    /dev/shm (tmpfs) refused it before Linux 6.6; newer kernels accept it, so
    as root we mount a ramfs, which still refuses it.
    """
    if os.path.isdir("/dev/shm") and _refuses_direct("/dev/shm"):
        with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
            yield d
        return
    mnt = tempfile.mkdtemp(prefix="tiered-ramfs-")
    res = subprocess.run(["mount", "-t", "ramfs", "ramfs", mnt], capture_output=True, text=True)
    if res.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"no filesystem refusing O_DIRECT available (mount ramfs: {res.stderr.strip()})")
    try:
        assert _refuses_direct(mnt)
        yield mnt
    finally:
        subprocess.run(["umount", mnt], check=False)
        os.rmdir(mnt)
