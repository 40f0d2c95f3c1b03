"""Persistent-memory tier: arrays in a libpmemobj pool, read zero-copy, written in transactions.

A pool is one file: on a DAX filesystem (e.g. /mnt/pmem0 on Optane in App
Direct mode), a devdax device, or an ordinary file that emulates persistent
memory through the page cache. The code is the same for all; `PMemPool.is_pmem`
says which it is. The pool's root object is a directory of up to 128 arrays;
an array is a list of allocations ("chunks") of at most `chunk_bytes` each,
because one libpmemobj allocation holds at most ~16 GiB.

Reads gather rows straight from the mapped pool with a parallel numba kernel.
Writes of a durable array (embeddings, optimizer state) run in libpmemobj
transactions: each row is snapshotted to the undo log before it changes, so a
crash at any point leaves every row at its value before or after the last
committed write; a `write_rows` call is one transaction (split into several of
`tx_bytes` of undo log each when larger, each row still atomic), and
`PMemPool.transaction()` makes several calls, across arrays, one transaction.
Writes of a scratch array (the PMem feature cache) are plain parallel copies.

Concurrency. libpmemobj locks a pool file for its opener (flock): a second
process, or a second open in this process, gets PMemError naming the holder.
Inside a process, share the one PMemPool and its tiers between threads: each
tier has a readers-writer lock (reads run in parallel, a write excludes reads so
nobody sees a half-written row), transactions on one pool are serialised, and
close() waits for operations in flight. A process forked from the owner (data
loader workers) inherits the mapping and may read through the inherited
objects, serially (numba's OpenMP cannot run after fork); it may not write,
allocate or run transactions (libpmemobj's per-pool state belongs to the owner),
and its close() leaves the owner's mapping and lock alone. Any other process
reads a pool only after the owner closes it. Numpy views from
`PMemTier.chunks()` are raw memory of the mapping: they are not locked and are
invalid after close().
"""
from __future__ import annotations

import contextlib
import errno as _errno
import hashlib
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

from ..format import ArrayLayout
from ..gather import as_byte_rows
from ..units import format_size
from . import pmemobj
from .base import Tier, TierHints
from .pmemobj import PMemError, PMemUnavailable

__all__ = ["PMemPool", "PMemTier", "PMemArrayInfo", "ArrayGeometry", "PMemError", "PMemUnavailable",
           "array_pool_bytes", "pool_capacity", "pool_size_for", "tx_headroom", "device_size",
           "source_key", "layout_source_key",
           "DEFAULT_CHUNK_BYTES", "DEFAULT_TX_BYTES", "MIN_POOL_BYTES"]

LAYOUT = "tiered-v1"
POOL_MAGIC = b"TIEREDPM"
POOL_VERSION = 1
MAX_ARRAYS = 128
MIN_POOL_BYTES = 8 << 20                 # PMEMOBJ_MIN_POOL
MAX_ALLOC_BYTES = 0x3FFDFFFC0            # PMEMOBJ_MAX_ALLOC_SIZE (~16 GiB)
DEFAULT_CHUNK_BYTES = 64 << 20           # one allocation; small enough to pack 16 GiB heap zones
DEFAULT_TX_BYTES = 8 << 20               # undo log per transaction of a large write_rows

# Sizing model of libpmemobj's heap, measured on PMDK 1.12 (tests/test_pmem.py checks it).
# Allocations above 10 chunks (MAX_RUN_SIZE) are "huge": whole 256 KiB chunks including a
# 16-byte header, packed without loss. Smaller ones go to run-based size classes whose
# packing wastes up to half of the space, so every allocation here is padded to at least
# HUGE_MIN_BYTES. A pool loses ~5 MiB to its header, lanes and heap metadata, plus ~0.5 MiB
# per 16 GiB zone.
ALLOC_UNIT = 256 << 10
ALLOC_HEADER = 16
HUGE_MIN_BYTES = 10 * ALLOC_UNIT - ALLOC_HEADER
POOL_OVERHEAD = 6 << 20
ZONE_BYTES = 16 << 30
ZONE_OVERHEAD = 1 << 20
UNDO_ENTRY_BYTES = 80                    # undo-log bytes per snapshotted row beyond the row

_STATE_FREE, _STATE_ALLOCATED, _STATE_READY = 0, 1, 2
_TYPE_TABLE, _TYPE_CHUNK = 1, 2          # libpmemobj type numbers of our allocations
_PARALLEL_BYTES = 1 << 20
_LOAD_BLOCK_BYTES = 64 << 20


# ---- sizing (pure functions: the manager plans with them without libpmemobj) ----

@dataclass(frozen=True)
class ArrayGeometry:
    """Name, shape and dtype of an array, and the sizes that follow from them: the one
    definition behind the pool's directory records and the tier manager's array specs."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes


def _alloc_size(nbytes: int) -> int:
    """What to ask libpmemobj for to hold `nbytes`: at least a huge allocation."""
    return max(nbytes, HUGE_MIN_BYTES)


def _alloc_bytes(nbytes: int) -> int:
    """Pool bytes an allocation holding `nbytes` takes."""
    return -(-(_alloc_size(nbytes) + ALLOC_HEADER) // ALLOC_UNIT) * ALLOC_UNIT


def chunk_rows_for(row_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per allocation: as many as fit `chunk_bytes` with the allocation header (>= 1)."""
    if not 0 < chunk_bytes <= MAX_ALLOC_BYTES + ALLOC_HEADER:
        raise ValueError(f"chunk_bytes must be in (0, {MAX_ALLOC_BYTES + ALLOC_HEADER}] "
                         f"(libpmemobj's largest allocation), got {chunk_bytes}")
    if row_bytes > MAX_ALLOC_BYTES:
        raise ValueError(f"a row of {row_bytes} bytes exceeds libpmemobj's largest allocation "
                         f"({MAX_ALLOC_BYTES} bytes)")
    return max(1, (chunk_bytes - ALLOC_HEADER) // max(1, row_bytes))


def _array_bytes(num_rows: int, row_bytes: int, chunk_rows: int) -> int:
    if num_rows == 0:
        return _alloc_bytes(0)                   # the chunk table alone
    full, rem = divmod(num_rows, chunk_rows)
    chunks = full * _alloc_bytes(chunk_rows * row_bytes)
    if rem:
        chunks += _alloc_bytes(rem * row_bytes)
    return chunks + _alloc_bytes((full + (rem > 0)) * 16)


def array_pool_bytes(num_rows: int, row_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Pool bytes an array of `num_rows` rows takes: its chunks and its chunk table."""
    return _array_bytes(num_rows, row_bytes, chunk_rows_for(row_bytes, chunk_bytes))


def pool_capacity(pool_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Bytes of arrays a pool of `pool_bytes` holds (a chunk per extra 16 GiB zone is
    counted as lost to packing: an allocation never spans two zones)."""
    zones = max(1, -(-pool_bytes // ZONE_BYTES))
    loss = zones * ZONE_OVERHEAD + (zones - 1) * _alloc_bytes(chunk_bytes)
    return max(0, pool_bytes - POOL_OVERHEAD - loss) // ALLOC_UNIT * ALLOC_UNIT


def pool_size_for(array_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Smallest pool size (whole MiB, at least 8 MiB) whose capacity holds `array_bytes`."""
    size = max(MIN_POOL_BYTES, array_bytes + POOL_OVERHEAD + ZONE_OVERHEAD)
    while (short := array_bytes - pool_capacity(size, chunk_bytes)) > 0:
        size += short
    return -(-size // (1 << 20)) * (1 << 20)


def tx_headroom(tx_bytes: int = DEFAULT_TX_BYTES) -> int:
    """Free pool bytes transactional writes need: one transaction's undo log
    (`tx_bytes`, measured to need up to ~1.1x in free space) and the log space
    libpmemobj keeps between transactions."""
    return tx_bytes + tx_bytes // 4 + (4 << 20)


def source_key(*parts) -> int:
    """64-bit fingerprint of where an array's contents came from (stored with the array)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def layout_source_key(layout: ArrayLayout) -> int:
    """Fingerprint of a dataset array: its name, shape, dtype and chunk files' sizes and mtimes."""
    files = []
    for p in layout.chunk_paths():
        st = os.stat(p)
        files.append((p.name, st.st_size, st.st_mtime_ns))
    return source_key(str(layout.directory.resolve()), layout.shape, layout.dtype.str, files)


# ---- kernels ----------------------------------------------------------------

@numba.njit(nogil=True, inline="always")
def _row_offset(chunk_off, chunk_rows, row_bytes, row):
    """Byte offset of `row` in the span: rows never straddle allocations."""
    c = row // chunk_rows
    return chunk_off[c] + (row - c * chunk_rows) * row_bytes


@numba.njit(nogil=True, cache=True)
def _gather_serial(span, chunk_off, chunk_rows, ids, out):
    rb = out.shape[1]
    for i in range(ids.shape[0]):
        o = _row_offset(chunk_off, chunk_rows, rb, ids[i])
        out[i, :] = span[o:o + rb]


@numba.njit(nogil=True, parallel=True, cache=True)
def _gather_parallel(span, chunk_off, chunk_rows, ids, out):
    rb = out.shape[1]
    for i in numba.prange(ids.shape[0]):
        o = _row_offset(chunk_off, chunk_rows, rb, ids[i])
        out[i, :] = span[o:o + rb]


@numba.njit(nogil=True, cache=True)
def _scatter_serial(span, chunk_off, chunk_rows, ids, rows):
    rb = rows.shape[1]
    for i in range(ids.shape[0]):
        o = _row_offset(chunk_off, chunk_rows, rb, ids[i])
        span[o:o + rb] = rows[i, :]


@numba.njit(nogil=True, parallel=True, cache=True)
def _scatter_parallel(span, chunk_off, chunk_rows, ids, rows):
    rb = rows.shape[1]
    for i in numba.prange(ids.shape[0]):
        o = _row_offset(chunk_off, chunk_rows, rb, ids[i])
        span[o:o + rb] = rows[i, :]


@intrinsic
def _voidptr(typingctx, addr):
    """An integer address as a void * (what cffi's pointer parameters take in numba)."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(addr), codegen


_tx_kernel = None


def _tx_scatter_kernel():
    """The transactional scatter, compiled once per process: numba calls
    pmemobj_tx_add_range_direct through the loaded library's function pointer,
    so it cannot be cached on disk and must run on the thread that began the
    transaction (libpmemobj transactions are per thread): it is serial."""
    global _tx_kernel
    if _tx_kernel is None:
        add_range = pmemobj.load()[1].pmemobj_tx_add_range_direct

        @numba.njit(nogil=True)
        def tx_scatter(span, span_addr, chunk_off, chunk_rows, ids, rows):
            rb = rows.shape[1]
            for i in range(ids.shape[0]):
                o = _row_offset(chunk_off, chunk_rows, rb, ids[i])
                err = add_range(_voidptr(span_addr + o), rb)
                if err != 0:
                    return err
                span[o:o + rb] = rows[i, :]
            return 0
        _tx_kernel = tx_scatter
    return _tx_kernel


# ---- locks --------------------------------------------------------------------

class _RWLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


_registry_lock = threading.Lock()
_open_pools: dict[tuple[int, int], "PMemPool"] = {}
_tx_pool = threading.local()             # the pool this thread has a transaction open on


def _after_fork_in_child() -> None:
    """A forked child keeps the parent's pools as read-only views: its locks start free
    (a parent thread may have held them at the fork) and no transaction is open."""
    global _registry_lock, _tx_pool
    _registry_lock = threading.Lock()
    _tx_pool = threading.local()
    for pool in _open_pools.values():
        pool._lock = threading.RLock()
        for tier in pool._tiers.values():
            tier._rw = _RWLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- pool -------------------------------------------------------------------

_ENTRY = "struct tiered_array_entry"


@dataclass(frozen=True)
class PMemArrayInfo(ArrayGeometry):
    """An array as the pool's directory records it."""

    chunk_rows: int
    num_chunks: int
    ready: bool                 # contents complete (False: allocated, never fully written)
    source_key: int

    @property
    def pool_bytes(self) -> int:
        """Pool space its allocations take."""
        return _array_bytes(self.shape[0], self.row_bytes, self.chunk_rows)


class PMemPool:
    """An open libpmemobj pool holding tiered's arrays. Use `create`, `open` or `open_or_create`.

    The pool stays open, and locked against other processes, until `close()`;
    libpmemobj needs no clean shutdown, so a process that dies leaves a pool
    that reopens consistent. Lock order inside: the pool's lock (directory
    changes, transactions, close), then a tier's readers-writer lock.
    """

    def __init__(self, path: Path, pop, size: int):
        self._ffi, self._lib, self._pmem = pmemobj.load()
        self.path = path
        self.size = size
        self._pop = pop
        self._base = int(self._ffi.cast("uintptr_t", pop))
        self.owner_pid = os.getpid()             # the process libpmemobj opened it in
        self._lock = threading.RLock()
        self._tiers: dict[str, PMemTier] = {}
        self._closed = False
        self.is_pmem = pmemobj.is_dax(path)
        flushes_as_pmem = bool(self._pmem.pmem_is_pmem(self._ffi.cast("void *", pop), 4096))
        # how a persisted write is made durable: "pmem" (real persistent memory),
        # "page-cache" (emulated, PMEM_IS_PMEM_FORCE: survives the process, not power
        # loss before sync()), "msync" (emulated, every flush an msync)
        self.persistence = ("pmem" if self.is_pmem
                            else "page-cache" if flushes_as_pmem else "msync")
        self._root = self._init_root()

    # -- opening ------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, size: int) -> "PMemPool":
        """Create a pool file of `size` bytes (on a devdax device: the device's size)."""
        ffi, lib, _ = pmemobj.load()
        path = Path(path)
        devdax = path.exists() and path.is_char_device()
        if path.exists() and not devdax:
            raise PMemError(f"{path}: already exists; open it, or delete it to create a new pool")
        if not devdax and size < MIN_POOL_BYTES:
            raise PMemError(f"{path}: pool size {format_size(size)} is below libpmemobj's minimum "
                            f"of {format_size(MIN_POOL_BYTES)}")
        with _registry_lock:
            pop = lib.pmemobj_create(os.fsencode(path), LAYOUT.encode(), 0 if devdax else size,
                                     0o600)
            if pop == ffi.NULL:
                err = ffi.errno
                raise PMemError(f"{path}: cannot create a pool of {format_size(size)}: "
                                f"{pmemobj.errormsg()} ({_errno.errorcode.get(err, err)})", err)
            return cls._register(path, pop)

    @classmethod
    def open(cls, path: str | os.PathLike) -> "PMemPool":
        """Open an existing pool; errors say whether it is in use, not a pool, or another layout."""
        ffi, lib, _ = pmemobj.load()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such pool file")
        with _registry_lock:
            other = _open_pools.get(_file_key(path))
            if other is not None and other.forked:
                raise PMemError(f"{path}: pool is open in process {other.owner_pid}, which this "
                                f"process was forked from; read through the inherited {other!r}")
            if other is not None:
                raise PMemError(f"{path}: pool is already open in this process ({other!r}); share "
                                "that object between threads (it is thread-safe) or close it first")
            pop = lib.pmemobj_open(os.fsencode(path), LAYOUT.encode())
            if pop == ffi.NULL:
                raise _open_error(path, ffi.errno, pmemobj.errormsg())
            return cls._register(path, pop)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, size: int) -> "PMemPool":
        """Open `path` if it is a pool (then its own size counts), else create it with `size` bytes.
        An empty file (as left by mktemp) is replaced."""
        path = Path(path)
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
        if path.exists() and not path.is_char_device():
            return cls.open(path)
        if path.exists():                        # devdax: a pool if it has our layout
            try:
                return cls.open(path)
            except PMemError:
                pass
        return cls.create(path, size)

    @classmethod
    def _register(cls, path: Path, pop) -> "PMemPool":
        try:
            pool = cls(path, pop, device_size(path))
        except BaseException:
            pmemobj.load()[1].pmemobj_close(pop)
            raise
        _open_pools[_file_key(path)] = pool
        return pool

    def _init_root(self):
        ffi, lib = self._ffi, self._lib
        want = ffi.sizeof("struct tiered_pool_root")
        have = lib.pmemobj_root_size(self._pop)
        if have not in (0, want):
            raise PMemError(f"{self.path}: root object has {have} bytes, expected {want}: the "
                            f"pool was written by another version of tiered (pool format "
                            f"{POOL_VERSION})")
        oid = lib.pmemobj_root(self._pop, want)
        if oid.off == 0:
            raise PMemError(f"{self.path}: cannot allocate the root object: {pmemobj.errormsg()}")
        root = ffi.cast("struct tiered_pool_root *", self._base + oid.off)
        magic = bytes(ffi.buffer(root.magic))
        if magic == bytes(8):
            with self._transaction(f"initialise pool {self.path}"):
                self._snapshot(root, 64)
                ffi.memmove(root.magic, POOL_MAGIC, 8)
                root.version = POOL_VERSION
                root.max_arrays = MAX_ARRAYS
        elif magic != POOL_MAGIC:
            raise PMemError(f"{self.path}: root object starts with {magic!r}, expected "
                            f"{POOL_MAGIC!r}: not a tiered pool")
        elif root.version != POOL_VERSION or root.max_arrays != MAX_ARRAYS:
            raise PMemError(f"{self.path}: pool format version {root.version} with "
                            f"{root.max_arrays} array slots; this tiered reads version "
                            f"{POOL_VERSION} with {MAX_ARRAYS}")
        return root

    # -- space --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def forked(self) -> bool:
        """True in a process forked from the owner: reads only (see the module doc)."""
        return os.getpid() != self.owner_pid

    @property
    def capacity(self) -> int:
        """Bytes of arrays the pool can hold (model of libpmemobj's usable heap)."""
        return pool_capacity(self.size)

    @property
    def used_bytes(self) -> int:
        return sum(a.pool_bytes for a in self.arrays().values())

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity - self.used_bytes)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.arrays())} arrays"
        return (f"PMemPool({str(self.path)!r}, size={format_size(self.size)}, "
                f"is_pmem={self.is_pmem}, {state})")

    # -- directory ------------------------------------------------------------------
    def arrays(self) -> dict[str, PMemArrayInfo]:
        """The arrays in the pool, by name."""
        with self._lock:
            self._check_open()
            return {info.name: info for _, info in self._entries()}

    def info(self, name: str) -> PMemArrayInfo:
        """Directory record of array `name` (KeyError if absent)."""
        with self._lock:
            return self._find(name)[1]

    def create_array(self, name: str, shape, dtype, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                     source_key: int = 0) -> PMemArrayInfo:
        """Allocate an array (contents undefined, not ready) in one transaction:
        a crash leaves either all of it or no trace of it."""
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        _check_array_spec(self.path, name, shape, dtype)
        row_bytes = ArrayGeometry(name, shape, dtype).row_bytes
        cr = chunk_rows_for(row_bytes, chunk_bytes)
        sizes = [min(cr, shape[0] - s) * row_bytes for s in range(0, shape[0], cr)]
        ffi, lib = self._ffi, self._lib
        with self._lock:
            self._check_open()
            if any(info.name == name for _, info in self._entries()):
                raise PMemError(f"{self.path}: array {name!r} already exists")
            slot = next((i for i in range(MAX_ARRAYS)
                         if self._root.arrays[i].state == _STATE_FREE), None)
            if slot is None:
                raise PMemError(f"{self.path}: all {MAX_ARRAYS} array slots are used")
            entry = ffi.addressof(self._root.arrays[slot])
            free, capacity = self.free_bytes, self.capacity
            try:
                with self._transaction(f"allocate array {name!r}"):
                    self._snapshot(entry, ffi.sizeof(_ENTRY))
                    table = lib.pmemobj_tx_xalloc(_alloc_size(len(sizes) * 16), _TYPE_TABLE, 0)
                    if table.off == 0:
                        raise _TxFailed
                    oids = ffi.cast("PMEMoid *", self._base + table.off)
                    for i, sz in enumerate(sizes):
                        # contents are undefined until written: no zeroing, no flush at commit
                        oid = lib.pmemobj_tx_xalloc(_alloc_size(sz), _TYPE_CHUNK,
                                                    pmemobj.POBJ_XALLOC_NO_FLUSH)
                        if oid.off == 0:
                            raise _TxFailed
                        oids[i] = oid
                    _fill_entry(ffi, entry, name, shape, dtype, cr, len(sizes), source_key, table)
            except PMemError as e:
                if e.errno != _errno.ENOMEM:
                    raise
                needed = _array_bytes(shape[0], row_bytes, cr)
                enough = pool_size_for(capacity - free + needed + tx_headroom())
                raise PMemError(
                    f"{self.path}: pool too small for array {name!r} {shape} {dtype}: it needs "
                    f"{format_size(needed)} ({len(sizes)} allocation(s) of up to "
                    f"{format_size(max(sizes, default=0))}), the pool has {format_size(free)} "
                    f"free of {format_size(capacity)}; a pool of at least "
                    f"{format_size(enough, ceil=True)} "
                    f"holds it", e.errno) from None
            return self._entry_info(entry)

    def delete_array(self, name: str) -> None:
        """Free an array's allocations (one transaction). Its tier must be closed."""
        ffi, lib = self._ffi, self._lib
        with self._lock:
            entry, _ = self._find(name)
            if name in self._tiers:
                raise PMemError(f"{self.path}: array {name!r} has an open tier; close it first")
            with self._transaction(f"delete array {name!r}"):
                oids = ffi.cast("PMEMoid *", self._base + entry.chunks.off)
                for i in range(entry.num_chunks):
                    if lib.pmemobj_tx_free(oids[i]) != 0:
                        raise _TxFailed
                if lib.pmemobj_tx_free(entry.chunks) != 0:
                    raise _TxFailed
                self._snapshot(entry, ffi.sizeof(_ENTRY))
                ffi.memmove(entry, bytes(ffi.sizeof(_ENTRY)), ffi.sizeof(_ENTRY))

    def set_ready(self, name: str, source_key: int) -> None:
        """Record, atomically, that `name` holds complete contents from `source_key`."""
        with self._lock:
            entry, _ = self._find(name)
            with self._transaction(f"mark array {name!r} ready"):
                self._snapshot(entry, self._ffi.sizeof(_ENTRY))
                entry.state = _STATE_READY
                entry.source_key = source_key

    def tier(self, name: str, *, durable: bool = True,
             tx_bytes: int = DEFAULT_TX_BYTES) -> "PMemTier":
        """The tier over array `name`: one object per array, shared by every caller.

        durable=True: writes are transactions (rows survive crashes whole).
        durable=False: writes are plain copies, for caches whose contents are
        rebuilt on every run (a crash may leave them torn).
        """
        with self._lock:
            entry, info = self._find(name)
            tier = self._tiers.get(name)
            if tier is None:
                tier = self._tiers[name] = PMemTier(self, entry, info, durable, tx_bytes)
            elif (tier.durable, tier.tx_bytes) != (durable, tx_bytes):
                raise PMemError(f"{self.path}: array {name!r} is open with durable={tier.durable}, "
                                f"tx_bytes={tier.tx_bytes}; asked durable={durable}, "
                                f"tx_bytes={tx_bytes}")
            return tier

    # -- transactions and durability --------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every durable write in the block one transaction: after a crash, all
        of them or none. The block's whole undo log must fit in the pool's free space."""
        with self._lock:
            self._check_open()
            with self._transaction("transaction"):
                yield

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """pmemobj_tx_begin/commit/end without setjmp: a failing libpmemobj call
        aborts the transaction and returns an error code; the caller raises
        _TxFailed and this raises PMemError. Any exception rolls the block back.
        Nested blocks join the outer transaction (libpmemobj nesting)."""
        ffi, lib = self._ffi, self._lib
        self._check_owner(what)
        outer = getattr(_tx_pool, "pool", None)
        if outer is not None and outer is not self:
            raise PMemError(f"{self.path}: {what}: this thread has a transaction open on "
                            f"{outer.path}; a libpmemobj transaction spans one pool")
        with self._lock:
            if lib.pmemobj_tx_begin(self._pop, ffi.NULL, ffi.cast("enum pobj_tx_param", 0)) != 0:
                msg = pmemobj.errormsg()
                err = lib.pmemobj_tx_end()
                raise PMemError(_tx_message(self.path, what, err, msg), err)
            _tx_pool.pool = self
            try:
                yield
            except BaseException as exc:
                if lib.pmemobj_tx_stage() == lib.TX_STAGE_WORK:
                    lib.pmemobj_tx_abort(_errno.ECANCELED)
                msg = pmemobj.errormsg()
                err = lib.pmemobj_tx_end()
                _tx_pool.pool = outer
                if isinstance(exc, _TxFailed):
                    raise PMemError(_tx_message(self.path, what, err, msg), err) from None
                raise
            if lib.pmemobj_tx_stage() == lib.TX_STAGE_WORK:
                lib.pmemobj_tx_commit()
            msg = pmemobj.errormsg()
            err = lib.pmemobj_tx_end()
            _tx_pool.pool = outer
            if err:
                raise PMemError(_tx_message(self.path, what, err, msg), err)

    def _snapshot(self, ptr, size: int) -> None:
        if self._lib.pmemobj_tx_add_range_direct(ptr, size) != 0:
            raise _TxFailed

    def sync(self) -> None:
        """Make an emulated pool durable against power loss (msync of the file);
        nothing to do on real persistent memory, where every flush already is."""
        with self._lock:
            self._check_open()
            if not self.is_pmem and self.size:
                if self._pmem.pmem_msync(self._ffi.cast("void *", self._pop), self.size) != 0:
                    raise PMemError(f"{self.path}: msync failed: {os.strerror(self._ffi.errno)}")

    def close(self) -> None:
        """Wait for operations in flight, sync an emulated pool, unmap and unlock. Idempotent.
        In a forked child: only forget the inherited objects (the owner keeps its pool)."""
        with self._lock:
            if self._closed:
                return
            for tier in list(self._tiers.values()):
                tier._detach()
            if not self.forked:                  # a forked child leaves the owner's pool be
                self.sync()
                self._lib.pmemobj_close(self._pop)
            self._closed = True
            self._pop = None
            with _registry_lock:
                for k in [k for k, v in _open_pools.items() if v is self]:
                    del _open_pools[k]

    def __enter__(self) -> "PMemPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise PMemError(f"{self.path}: pool is closed")

    def _check_owner(self, what: str) -> None:
        if self.forked:
            raise PMemError(f"{self.path}: {what}: only process {self.owner_pid}, which opened "
                            f"the pool, may change it; this process (pid {os.getpid()}) was "
                            f"forked from it and may only read")

    def _find(self, name: str):
        self._check_open()
        for entry, info in self._entries():
            if info.name == name:
                return entry, info
        raise KeyError(f"{self.path}: pool has no array {name!r} "
                       f"(has {sorted(i.name for _, i in self._entries())})")

    def _entries(self):
        ffi = self._ffi
        for i in range(MAX_ARRAYS):
            if self._root.arrays[i].state != _STATE_FREE:
                entry = ffi.addressof(self._root.arrays[i])
                yield entry, self._entry_info(entry)

    def _entry_info(self, entry) -> PMemArrayInfo:
        ffi = self._ffi
        return PMemArrayInfo(
            name=ffi.string(entry.name).decode(),
            shape=tuple(int(entry.shape[k]) for k in range(entry.ndim)),
            dtype=np.dtype(ffi.string(entry.dtype).decode()),
            chunk_rows=int(entry.chunk_rows), num_chunks=int(entry.num_chunks),
            ready=entry.state == _STATE_READY, source_key=int(entry.source_key))

    def _chunk_offsets(self, entry) -> np.ndarray:
        oids = self._ffi.cast("PMEMoid *", self._base + entry.chunks.off)
        return np.array([oids[i].off for i in range(entry.num_chunks)], dtype=np.int64)


class _TxFailed(Exception):
    """A libpmemobj call failed and aborted the transaction; `_transaction` reports why."""


def _tx_message(path: Path, what: str, err: int, msg: str) -> str:
    return (f"{path}: {what} failed and was rolled back: {msg} "
            f"({_errno.errorcode.get(err, err)})")


def _fill_entry(ffi, entry, name, shape, dtype, chunk_rows, num_chunks, key, table) -> None:
    ffi.memmove(entry.name, name.encode().ljust(96, b"\0"), 96)
    ffi.memmove(entry.dtype, dtype.str.encode().ljust(16, b"\0"), 16)
    entry.ndim = len(shape)
    for k in range(6):
        entry.shape[k] = shape[k] if k < len(shape) else 0
    entry.chunk_rows = chunk_rows
    entry.num_chunks = num_chunks
    entry.source_key = key
    entry.chunks = table
    entry.state = _STATE_ALLOCATED


def _check_array_spec(path: Path, name: str, shape: tuple, dtype: np.dtype) -> None:
    if not name or len(name.encode()) >= 96 or "\0" in name:
        raise ValueError(f"{path}: array name {name!r} must be 1-95 bytes without NUL")
    if not 1 <= len(shape) <= 6 or min(shape) < 0:
        raise ValueError(f"{path}: array {name!r}: shape {shape} must have 1-6 non-negative dims")
    if dtype.hasobject or dtype.fields is not None or len(dtype.str) >= 16:
        raise ValueError(f"{path}: array {name!r}: dtype {dtype} is not a plain numeric dtype")


def _file_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def device_size(path: str | os.PathLike) -> int:
    """Bytes a single-file pool maps (a devdax device reports its size in sysfs)."""
    path = Path(path)
    st = os.stat(path)
    if not path.is_char_device():
        return st.st_size
    sys_size = Path(f"/sys/dev/char/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}/size")
    return int(sys_size.read_text()) if sys_size.exists() else 0


def _open_error(path: Path, err: int, msg: str) -> PMemError:
    """Turn a failed pmemobj_open into an error that says what the file is."""
    if err in (_errno.EAGAIN, _errno.EWOULDBLOCK) and "flock" in msg:
        pid = pmemobj.lock_holder(path)
        who = f"process {pid}" if pid else "another process"
        return PMemError(f"{path}: pool is open in {who}; libpmemobj gives a pool to one process "
                         "at a time (flock): close it there first, or read it through that process",
                         err)
    with open(path, "rb") as f:
        head = f.read(4096 + 1024)
    if head[:8] != b"PMEMOBJ\0":
        return PMemError(f"{path}: not a libpmemobj pool (starts with {head[:8]!r}, expected the "
                         f"PMEMOBJ signature; libpmemobj: {msg})", err)
    layout = head[4096:].split(b"\0", 1)[0].decode(errors="replace")
    if layout != LAYOUT:
        return PMemError(f"{path}: pool has layout {layout!r}, expected {LAYOUT!r}: it belongs to "
                         "another program", err)
    return PMemError(f"{path}: libpmemobj cannot open the pool: {msg} "
                     f"({_errno.errorcode.get(err, err)}; the file has "
                     f"{format_size(os.path.getsize(path))}); `pmempool check {path}` diagnoses it",
                     err)


# ---- tier -------------------------------------------------------------------

class PMemTier(Tier):
    """Rows of one array in a PMem pool. Get it from `PMemPool.tier(name)`."""

    def __init__(self, pool: PMemPool, entry, info: PMemArrayInfo, durable: bool, tx_bytes: int):
        super().__init__(f"pmem:{info.name}", info.shape[0], info.shape[1:], info.dtype)
        self.pool = pool
        self.array_name = info.name
        self.durable = durable
        self.tx_bytes = int(tx_bytes)
        self.chunk_rows = info.chunk_rows
        self._entry = entry
        self._rw = _RWLock()
        self._attached = True
        offs = pool._chunk_offsets(entry)
        self._span = np.empty(0, np.uint8)
        self._span_addr = 0
        self._chunk_off = np.zeros(len(offs), np.int64)
        if len(offs):
            first = np.arange(len(offs)) * self.chunk_rows
            sizes = np.minimum(self.chunk_rows, self.num_rows - first) * self.row_bytes
            lo, hi = int(offs.min()), int((offs + sizes).max())
            self._span_addr = pool._base + lo
            buf = pool._ffi.buffer(pool._ffi.cast("char *", self._span_addr), hi - lo)
            self._span = np.frombuffer(buf, dtype=np.uint8)
            self._chunk_off = offs - lo

    @property
    def hints(self) -> TierHints:
        return TierHints(kind="pmem", page_bytes=256 if self.pool.is_pmem else mmap.PAGESIZE,
                         parallel_requests=numba.get_num_threads(), persistent=True)

    @property
    def is_pmem(self) -> bool:
        """Real persistent memory (False: a file emulates it through the page cache)."""
        return self.pool.is_pmem

    @property
    def ready(self) -> bool:
        """True once `load` completed (or `PMemPool.set_ready` was called)."""
        with self._rw.read():
            self._check_attached()
            return self._entry.state == _STATE_READY

    def chunks(self) -> list[np.ndarray]:
        """Zero-copy views of the array's allocations, in row order. Raw memory of
        the mapping: not locked, not transactional, invalid once the pool closes."""
        with self._rw.read():
            self._check_attached()
            views = []
            for c, off in enumerate(self._chunk_off):
                rows = min(self.chunk_rows, self.num_rows - c * self.chunk_rows)
                raw = self._span[off:off + rows * self.row_bytes]
                views.append(raw.view(self.dtype).reshape((rows,) + self.row_shape))
            return views

    def load(self, source: np.ndarray | ArrayLayout | Callable[[int, int], np.ndarray],
             source_key: int = 0) -> None:
        """Fill every row from `source` (an array, a dataset array, or f(start, stop) -> rows),
        persist, then mark the array ready with `source_key`. Not transactional: a crash
        midway leaves the array not ready, and whoever opens it next loads it again."""
        self.pool._check_owner(f"load array {self.array_name!r}")
        block, boundary = _row_source(source, self)
        ffi, lib = self.pool._ffi, self.pool._lib
        step = max(1, _LOAD_BLOCK_BYTES // max(1, self.row_bytes))
        with self._rw.write():
            self._check_attached()
            a = 0
            while a < self.num_rows:
                b = min(self.num_rows, a + step, (a // boundary + 1) * boundary)
                rows = np.ascontiguousarray(block(a, b), dtype=self.dtype)
                if rows.shape != (b - a,) + self.row_shape:
                    raise ValueError(f"{self.name}: source rows {a}:{b} have shape {rows.shape}, "
                                     f"expected {(b - a,) + self.row_shape}")
                self._copy_in(ffi, lib, a, rows)
                a = b
            lib.pmemobj_drain(self.pool._pop)
        self.pool.set_ready(self.array_name, source_key)

    def _copy_in(self, ffi, lib, start: int, rows: np.ndarray) -> None:
        """pmemobj_memcpy (flushing, non-temporal on pmem) chunk piece by chunk piece."""
        src = ffi.from_buffer(rows)
        done = 0
        while done < len(rows):
            c, within = divmod(start + done, self.chunk_rows)
            take = min(len(rows) - done, self.chunk_rows - within)
            dst = self._span_addr + int(self._chunk_off[c]) + within * self.row_bytes
            lib.pmemobj_memcpy(self.pool._pop, ffi.cast("void *", dst), src + done * self.row_bytes,
                               take * self.row_bytes, pmemobj.PMEMOBJ_F_MEM_NODRAIN)
            done += take

    def _read(self, ids: np.ndarray, out: np.ndarray) -> int:
        o = as_byte_rows(out)
        parallel = o.nbytes >= _PARALLEL_BYTES and not self.pool.forked
        kernel = _gather_parallel if parallel else _gather_serial
        with self._rw.read():
            self._check_attached()
            kernel(self._span, self._chunk_off, self.chunk_rows, ids, o)
        return o.nbytes

    def _write(self, ids: np.ndarray, rows: np.ndarray) -> int:
        r = as_byte_rows(rows)
        self.pool._check_owner(f"write {len(ids)} rows of array {self.array_name!r}")
        if not self.durable:
            kernel = _scatter_parallel if r.nbytes >= _PARALLEL_BYTES else _scatter_serial
            with self._rw.write():
                self._check_attached()
                kernel(self._span, self._chunk_off, self.chunk_rows, ids, r)
            return r.nbytes
        kernel = _tx_scatter_kernel()
        per_tx = max(1, self.tx_bytes // (self.row_bytes + UNDO_ENTRY_BYTES))
        with self.pool._lock, self._rw.write():
            self._check_attached()
            for a in range(0, len(ids), per_tx):
                n = min(per_tx, len(ids) - a)
                try:
                    with self.pool._transaction(f"write {n} rows of array {self.array_name!r}"):
                        if kernel(self._span, self._span_addr, self._chunk_off, self.chunk_rows,
                                  ids[a:a + n], r[a:a + n]):
                            raise _TxFailed
                except PMemError as e:
                    if e.errno != _errno.ENOMEM:
                        raise
                    undo = n * (self.row_bytes + UNDO_ENTRY_BYTES)
                    raise PMemError(f"{e}: the undo log of {n} rows needs about "
                                    f"{format_size(undo)} of free pool space and the pool has "
                                    f"{format_size(self.pool.free_bytes)}; lower tx_bytes "
                                    f"(now {format_size(self.tx_bytes)}) or leave "
                                    f"tx_headroom() free", e.errno) from None
        return r.nbytes

    def close(self) -> None:
        """Detach from the pool (the pool stays open, the array stays in it). Idempotent."""
        with self.pool._lock:
            self._detach()

    def _detach(self) -> None:
        with self._rw.write():
            if self._attached:
                self._attached = False
                self._span = np.empty(0, np.uint8)
                self.pool._tiers.pop(self.array_name, None)

    def _check_attached(self) -> None:
        if not self._attached:
            raise PMemError(f"{self.pool.path}: tier {self.name} is closed")


def _row_source(source, tier: PMemTier) -> tuple[Callable[[int, int], np.ndarray], int]:
    """f(start, stop) -> rows for a load, and the row boundary blocks must not cross."""
    if isinstance(source, ArrayLayout):
        if source.shape != (tier.num_rows,) + tier.row_shape:
            raise ValueError(f"{tier.name}: {source.directory} has shape {source.shape}, "
                             f"expected {(tier.num_rows,) + tier.row_shape}")
        maps = source.memmap_chunks()
        cr = source.chunk_rows
        return (lambda a, b: maps[a // cr][a % cr: a % cr + (b - a)]), cr
    if callable(source):
        return source, max(1, tier.num_rows)
    arr = np.asarray(source)
    if arr.shape != (tier.num_rows,) + tier.row_shape:
        raise ValueError(f"{tier.name}: source has shape {arr.shape}, expected "
                         f"{(tier.num_rows,) + tier.row_shape}")
    return (lambda a, b: arr[a:b]), max(1, tier.num_rows)
