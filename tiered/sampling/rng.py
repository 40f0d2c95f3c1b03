"""Counter-based randomness for sampling: every draw is a hash of (seed, batch, node, i).

A batch's sample therefore depends on the seed and the batch's key alone, never
on how batches are chunked or how many threads run.
"""
from __future__ import annotations

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@numba.njit(nogil=True, cache=True, inline="always")
def mix64(x):
    """splitmix64 finaliser: bijective and well mixed."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit(nogil=True, cache=True, inline="always")
def stream(seed, key, item):
    """The state of the random stream of `item` (a node) in batch `key` under `seed`."""
    return mix64(np.uint64(seed) ^ mix64(np.uint64(key) * _GOLDEN + np.uint64(item) + _GOLDEN))


@numba.njit(nogil=True, cache=True, inline="always")
def below(state, i, m):
    """Uniform integer in [0, m) for draw i of a stream (bias <= m / 2**53)."""
    h = mix64(state + np.uint64(i + 1) * _GOLDEN)
    return np.int64(float(h >> _S11) * _INV53 * m)
