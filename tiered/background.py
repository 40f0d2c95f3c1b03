"""A bounded producer thread: how the pipeline's stages run ahead of each other.

The inspector samples and plans superbatches ahead of the executor, and the
executor reads and assembles batches ahead of the model. Each stage is a
`Background` over an iterable: its items are produced in a daemon thread, at
most `depth` ahead; an exception in the producer is raised in the consumer; and
close() stops the producer without leaving a thread behind.
"""
from __future__ import annotations

import queue
import threading
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1
_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Background(Generic[T]):
    """Iterates `source` in a daemon thread named `name`, at most `depth` items ahead.

    Iterate it once, from one consumer thread. close() stops the producer: it sets the
    stop flag, closes `upstream` (the stage `source` reads from, so a producer blocked
    on it wakes up), and joins the thread; the producer closes `source` itself, in its
    own thread, as it exits.
    """

    def __init__(self, source: Iterable[T], depth: int, name: str, upstream: object = None):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._upstream = upstream
        self._thread = threading.Thread(target=self._produce, args=(source,), name=name,
                                        daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        """Queue `item` unless stopped first; False when stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as e:      # noqa: BLE001 - raised again in the consumer
            self._put(_Failure(e))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[T]:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        close = getattr(self._upstream, "close", None)
        if close is not None:
            close()
        self._thread.join()
