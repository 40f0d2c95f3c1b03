"""Counter-based randomness for sampling: every draw is a hash of (seed, batch, node, i).

A batch's sample therefore depends on the seed and the batch's key alone, never
on how batches are chunked or how many threads run.
"""
from __future__ import annotations

import numba
import numpy as np

from ..splitmix import GOLDEN, INV53, mix64

_S11 = np.uint64(11)


@numba.njit(nogil=True, cache=True, inline="always")
def stream(seed, key, item):
    """The state of the random stream of `item` (a node) in batch `key` under `seed`."""
    return mix64(np.uint64(seed) ^ mix64(np.uint64(key) * GOLDEN + np.uint64(item) + GOLDEN))


@numba.njit(nogil=True, cache=True, inline="always")
def below(state, i, m):
    """Uniform integer in [0, m) for draw i of a stream (bias <= m / 2**53)."""
    h = mix64(state + np.uint64(i + 1) * GOLDEN)
    return np.int64(float(h >> _S11) * INV53 * m)
