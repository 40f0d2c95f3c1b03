"""SSD tier: rows of an on-disk array read with O_DIRECT, many requests in flight.

The reading is native (native/ssd_reader.c, built by cffi at install time):
requested rows are sorted by offset, rows sharing a 4 KiB page cost one page
read, adjacent pages merge into one request, and `queue_depth` requests are in
flight through io_uring (or a pthread pool where io_uring is refused). A
filesystem that refuses O_DIRECT (tmpfs) is read buffered, with one warning.
kvikio (GPUDirect Storage) is used only when asked for and importable with CUDA.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..format import ArrayLayout, check_array_files
from .base import Tier, TierHints

try:
    from .. import _native_ssd
except ImportError as e:                      # pragma: no cover - depends on the install
    raise ImportError(
        "tiered's native SSD reader (tiered._native_ssd) is not built. Install the package "
        "with `pip install -e .` from the repository root (or run `make install`), which "
        "compiles native/ssd_reader.c through cffi; liburing-dev enables io_uring."
    ) from e

_ffi, _lib = _native_ssd.ffi, _native_ssd.lib
BACKENDS = {"auto": 0, "io_uring": 1, "threads": 2}
_BACKEND_NAMES = {1: "io_uring", 2: "threads"}
PAGE_BYTES = int(_lib.tiered_ssd_page_bytes())
_ERRLEN = 512


def choose_backend(requested: str = "auto") -> str:
    """The reader a tier will use: "native" unless the user asked for kvikio and it can run.

    kvikio reads through CUDA (GPUDirect Storage or its POSIX compat mode) and
    cannot read anything without a CUDA driver, so it is never picked
    implicitly.
    """
    if requested in ("auto", "native", "io_uring", "threads"):
        return "native"
    if requested != "kvikio":
        raise ValueError(f"unknown SSD backend {requested!r}; choose auto, io_uring, threads or kvikio")
    try:
        import kvikio  # noqa: F401
        import torch
    except ImportError as e:
        raise RuntimeError(f"SSD backend 'kvikio' asked for but not importable ({e}); "
                           "pip install kvikio-cu12, or use the native reader") from e
    if not torch.cuda.is_available():
        raise RuntimeError("SSD backend 'kvikio' needs a CUDA device; none is available here")
    return "kvikio"


class SSDTier(Tier):
    """Rows of one dataset array, read from its chunk files on the SSD.

    Parameters: `queue_depth` reads in flight; `max_run_bytes` caps one merged
    request; `max_gap_pages` unneeded pages may be read to bridge two needed
    ones (0: read only needed pages); `direct=False` forces buffered reads.
    """

    def __init__(self, layout: ArrayLayout, *, backend: str = "auto", queue_depth: int = 64,
                 max_run_bytes: int = 128 << 10, max_gap_pages: int = 0, direct: bool = True,
                 writable: bool = False, name: str | None = None):
        super().__init__(name or f"ssd:{layout.name}", layout.num_rows, layout.row_shape, layout.dtype)
        check_array_files(layout)
        self.layout = layout
        self.queue_depth = int(queue_depth)
        self.max_run_bytes = int(max_run_bytes)
        self.max_gap_pages = int(max_gap_pages)
        self.writable = writable
        self.reader = choose_backend(backend)
        if self.reader == "kvikio":
            raise NotImplementedError("kvikio reads land with the CUDA executor; use the native reader")
        if backend not in BACKENDS:
            backend = "auto"
        err = _ffi.new("char[]", _ERRLEN)
        paths = [_ffi.new("char[]", os.fsencode(p)) for p in layout.chunk_paths()]
        c_paths = _ffi.new("const char *[]", paths) if paths else _ffi.NULL
        self._h = _lib.tiered_ssd_open(c_paths, len(paths), layout.chunk_bytes, int(direct),
                                       int(writable), BACKENDS[backend], err, _ERRLEN)
        if self._h == _ffi.NULL:
            raise OSError(f"{layout.directory}: {_ffi.string(err).decode()}")
        self.direct = bool(_lib.tiered_ssd_is_direct(self._h))
        self.backend = _BACKEND_NAMES[int(_lib.tiered_ssd_backend(self._h))]
        if direct and not self.direct:
            warnings.warn(f"{layout.directory}: filesystem refuses O_DIRECT; SSD tier reads are "
                          "buffered (page cache in use)", RuntimeWarning, stacklevel=2)

    @property
    def hints(self) -> TierHints:
        return TierHints(kind="ssd", page_bytes=PAGE_BYTES, parallel_requests=self.queue_depth,
                         persistent=True)

    def _handle(self):
        if self._h is None:
            raise ValueError(f"{self.name}: tier is closed")
        return self._h

    def _read(self, ids: np.ndarray, out: np.ndarray) -> int:
        h = self._handle()
        err = _ffi.new("char[]", _ERRLEN)
        got = _lib.tiered_ssd_gather(
            h, _ffi.cast("const long long *", ids.ctypes.data), len(ids),
            self.layout.chunk_rows, self.row_bytes, _ffi.cast("char *", out.ctypes.data),
            self.queue_depth, self.max_run_bytes, self.max_gap_pages, err, _ERRLEN)
        if got < 0:
            raise OSError(f"{self.layout.directory}: {_ffi.string(err).decode()}")
        return int(got)

    def _write(self, ids: np.ndarray, rows: np.ndarray) -> int:
        if not self.writable:
            raise PermissionError(f"{self.name}: opened read-only (pass writable=True)")
        h = self._handle()
        err = _ffi.new("char[]", _ERRLEN)
        rows = np.ascontiguousarray(rows)
        got = _lib.tiered_ssd_write(
            h, _ffi.cast("const long long *", ids.ctypes.data), len(ids), self.layout.chunk_rows,
            self.row_bytes, _ffi.cast("const char *", rows.ctypes.data), err, _ERRLEN)
        if got < 0:
            raise OSError(f"{self.layout.directory}: {_ffi.string(err).decode()}")
        return int(got)

    def flush(self) -> None:
        """Make written rows durable (fsync every chunk file)."""
        if self.writable:
            err = _ffi.new("char[]", _ERRLEN)
            if _lib.tiered_ssd_sync(self._handle(), err, _ERRLEN) < 0:
                raise OSError(f"{self.layout.directory}: {_ffi.string(err).decode()}")

    def close(self) -> None:
        if getattr(self, "_h", None) is not None:
            _lib.tiered_ssd_close(self._h)
            self._h = None

    def __del__(self):
        self.close()
