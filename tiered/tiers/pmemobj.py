"""Loading libpmemobj: the cffi binding, the environment PMDK reads, and its errors.

The binding (tiered._native_pmemobj, generated from native/pmem_cdefs.h) is
cffi's out-of-line ABI mode: installing tiered needs no PMDK, and the library
is dlopen()ed here on first use. Two environment variables are settled before
that, because libpmemobj and libpmem read them once per process:

* ``PMEMOBJ_CONF`` gains ``sds.at_create=0`` unless it sets ``sds.at_create``
  itself: PMDK >= 2.1 refuses to create a pool on storage without an
  unsafe-shutdown counter (anything but real persistent memory) unless the
  shutdown-state feature is off; 1.12 accepts the setting as well.
* ``PMEM_IS_PMEM_FORCE=1`` unless already set or ``TIERED_PMEM_MSYNC=1``:
  on a file that only emulates persistent memory, libpmem would otherwise make
  every flush an msync(2), about 0.5 ms per transactionally written row on an
  SSD. Forced, a flush is a CPU cache-line write-back: an emulated pool stays
  consistent when the process dies (SIGKILL, OOM kill) but is durable against
  power loss only after `PMemPool.sync()` or `close()`. On real persistent
  memory the setting changes nothing. docs/tiers.md has the details.
"""
from __future__ import annotations

import errno as _errno
import mmap
import os
import stat
import threading

PACKAGES = "libpmemobj1 (runtime; libpmemobj-dev and pmdk-tools for development)"
LIBS = ("libpmemobj.so.1", "libpmem.so.1")
API_VERSION = (2, 4)                  # libpmemobj's API version in PMDK 1.12
MSYNC_ENV = "TIERED_PMEM_MSYNC"

# Flags from <libpmemobj/base.h> (cffi's ABI mode does not read #defines).
POBJ_XALLOC_NO_FLUSH = 1 << 1
PMEMOBJ_F_MEM_NODRAIN = 1 << 0

_MAP_SHARED_VALIDATE = 0x03
_MAP_SYNC = 0x80000

_lock = threading.Lock()
_loaded: tuple | None = None


class PMemUnavailable(RuntimeError):
    """libpmemobj cannot be loaded: the PMem tier is unavailable, everything else works."""


class PMemError(RuntimeError):
    """A pool or array operation failed; the message names the pool file and the array.

    `errno` is libpmemobj's error code when one caused it (ENOMEM: pool full)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _settle_environment() -> None:
    conf = os.environ.get("PMEMOBJ_CONF", "")
    if "sds.at_create" not in conf:
        os.environ["PMEMOBJ_CONF"] = (conf + ";" if conf else "") + "sds.at_create=0"
    if os.environ.get(MSYNC_ENV) != "1":
        os.environ.setdefault("PMEM_IS_PMEM_FORCE", "1")


def load():
    """(ffi, libpmemobj, libpmem), loaded once per process; PMemUnavailable names the package."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        try:
            from .._native_pmemobj import ffi
        except ImportError as e:
            raise PMemUnavailable(
                "tiered's libpmemobj binding (tiered._native_pmemobj) is not generated: install "
                "tiered with `pip install -e .` (or run `python native/build_pmem.py`)") from e
        _settle_environment()
        try:
            obj = ffi.dlopen(LIBS[0])
            pmem = ffi.dlopen(LIBS[1])
        except OSError as e:
            raise PMemUnavailable(
                f"the persistent-memory tier needs libpmemobj from PMDK >= 1.12, which could not "
                f"be loaded ({e}); on Debian/Ubuntu: apt-get install {PACKAGES}") from e
        bad = obj.pmemobj_check_version(*API_VERSION)
        if bad != ffi.NULL:
            raise PMemUnavailable(f"{LIBS[0]} is too old: {ffi.string(bad).decode()}; tiered "
                                  f"needs PMDK >= 1.12 (apt-get install {PACKAGES})")
        _loaded = (ffi, obj, pmem)
        return _loaded


def unavailable_reason() -> str | None:
    """Why no PMem tier can be created here (None: it can)."""
    try:
        load()
        return None
    except PMemUnavailable as e:
        return str(e)


def available() -> bool:
    """True when a PMem tier can be created here."""
    return unavailable_reason() is None


def errormsg() -> str:
    """libpmemobj's last error message on this thread."""
    ffi, obj, _ = load()
    return ffi.string(obj.pmemobj_errormsg()).decode(errors="replace")


def is_dax(path: str | os.PathLike) -> bool:
    """Whether `path` is real persistent memory: a devdax device, or a file on a
    filesystem that grants MAP_SYNC mappings (fsdax). This is what pmem_is_pmem
    answers when not forced; it is asked of the kernel directly because
    PMEM_IS_PMEM_FORCE makes libpmem's answer always yes."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        m = mmap.mmap(fd, mmap.PAGESIZE, flags=_MAP_SHARED_VALIDATE | _MAP_SYNC,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as e:
        if e.errno in (_errno.EOPNOTSUPP, _errno.EINVAL):
            return False
        raise
    finally:
        os.close(fd)
    m.close()
    return True


def lock_holder(path: str | os.PathLike) -> int | None:
    """PID of the process holding a flock on `path` (from /proc/locks), if visible."""
    st = os.stat(path)
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == want:
                    return int(parts[4])
    except OSError:
        return None
    return None
