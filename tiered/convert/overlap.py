"""Overlapping compute and I/O on a 2nd thread: numba kernels (nogil), zlib and file
writes release the GIL, so the next block is produced while this one is consumed.

Both threads may launch numba parallel kernels at once, which the OpenMP and TBB
threading layers allow and the workqueue layer does not; under workqueue,
`prefetch` falls back to plain iteration.
"""
from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import numba
import numpy as np

T = TypeVar("T")
_END = object()


@numba.njit(nogil=True, cache=True, parallel=True)
def _probe(a):
    for i in numba.prange(a.shape[0]):
        a[i] = i


@functools.cache
def threads_may_share_numba() -> bool:
    """Whether two threads may run numba parallel kernels concurrently."""
    _probe(np.zeros(2))
    return numba.threading_layer() != "workqueue"


def prefetch(iterable: Iterable[T]) -> Iterator[T]:
    """Iterate `iterable` one item ahead on a background thread (errors surface in order)."""
    if not threads_may_share_numba():
        yield from iterable
        return
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as pool:
        it = iter(iterable)
        pending = pool.submit(next, it, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, it, _END)
            yield item

class WriteBehind:
    """Hands blocks to `write` on one background thread, one block in flight, so the next
    block is generated or parsed (numba, without the GIL) while the last goes to disk."""

    def __init__(self, write: Callable[[np.ndarray], None]):
        self._write = write
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="write-behind")
        self._pending: Future | None = None

    def write(self, block: np.ndarray) -> None:
        self.flush()
        self._pending = self._pool.submit(self._write, block)

    def flush(self) -> None:
        """Wait for the block in flight; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.flush()
            elif self._pending is not None:
                self._pending.exception()          # wait; the first error is the one raised
        finally:
            self._pool.shutdown(wait=True)
