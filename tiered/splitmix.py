"""splitmix64: the 64-bit hash under all of tiered's counter-based randomness.

The converters' generators (tiered/convert/hashing.py) and the sampler
(tiered/sampling/rng.py) derive every random value by hashing counters with it,
so results never depend on block sizes or thread counts.
"""
from __future__ import annotations

import numba
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)     # the golden-ratio increment of splitmix64
INV53 = 1.0 / 9007199254740992.0           # 2**-53: top 53 bits of a hash -> [0, 1)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)


@numba.njit(nogil=True, cache=True, inline="always")
def mix64(x):
    """splitmix64 finaliser: a bijective, well-mixed 64-bit hash."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)
