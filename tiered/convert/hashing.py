"""Counter-based randomness: every random value is a hash of (seed, stream, counter).

Value i of a stream is splitmix64's output i from a state seeded by the stream key.

Generators draw edge e's or node v's randomness from its own counter, so the
output depends only on the seed, never on block sizes or thread counts.
"""
from __future__ import annotations

import numba
import numpy as np

from ..splitmix import GOLDEN, INV53, mix64

_S16 = np.uint64(16)
_MASK16 = np.uint64(0xFFFF)
_SQRT3 = np.sqrt(3.0)


def stream_key(seed: int, stream: int) -> np.uint64:
    """Key of one named random stream under a seed (streams are independent in practice)."""
    x = np.uint64((seed * 0x2545F4914F6CDD1D + stream * 0x9E3779B97F4A7C15) % (1 << 64))
    return np.uint64(mix64(np.uint64(x) ^ np.uint64(0xD1B54A32D192ED03)))


@numba.njit(nogil=True, cache=True, inline="always")
def hash_at(key, counter):
    """64 random bits for position `counter` of the stream `key` (splitmix64 started at key)."""
    return mix64(key + (np.uint64(counter) + np.uint64(1)) * GOLDEN)


@numba.njit(nogil=True, cache=True, inline="always")
def uniform_at(key, counter):
    """A uniform float in [0, 1) for position `counter` of stream `key`."""
    return float(hash_at(key, counter) >> np.uint64(11)) * INV53


@numba.njit(nogil=True, cache=True, inline="always")
def normal_from_bits(h):
    """Approximately N(0, 1) from 64 random bits: Irwin-Hall sum of four 16-bit uniforms.

    Exact mean and variance, tails cut at +-3.46 sigma; one hash per value
    instead of Box-Muller's logarithm and cosine.
    """
    s = (float(h & _MASK16) + float((h >> _S16) & _MASK16)
         + float((h >> np.uint64(32)) & _MASK16) + float(h >> np.uint64(48)) + 2.0) / 65536.0
    return (s - 2.0) * _SQRT3


def _odd_inverse(a: int) -> int:
    """Inverse of an odd number modulo 2**64 (Newton iteration)."""
    inv = a
    for _ in range(6):
        inv = (inv * (2 - a * inv)) % (1 << 64)
    return inv


class Permutation:
    """A seeded bijection of [0, n), computed per element, never materialised.

    On b-bit integers (2^b >= n) two rounds of (xor key, multiply by an odd
    constant mod 2^b, xorshift by b/2) form a bijection with a cheap inverse;
    cycle walking (re-applying until the value falls below n) restricts it to
    [0, n) in under two rounds on average. Used to scatter the R-MAT hubs over
    the id range, as in real data.
    """

    def __init__(self, n: int, seed: int, stream: int):
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        mask = (1 << bits) - 1
        keys = [int(stream_key(seed, stream * 16 + r)) for r in range(4)]
        mults = [(k | 1) & mask for k in keys[2:]]
        shift = max(1, bits // 2)
        self._params = (np.uint64(self.n), np.uint64(mask), np.uint64(shift),
                        -(-bits // shift), np.array([keys[0] & mask, keys[1] & mask], np.uint64),
                        np.array(mults, np.uint64),
                        np.array([_odd_inverse(m) & mask for m in mults], np.uint64))

    def params(self) -> tuple:
        """Arguments for the numba kernels `permute` / `unpermute`."""
        return self._params


@numba.njit(nogil=True, cache=True, inline="always")
def _mix_bits(x, mask, shift, xors, mults):
    for r in range(2):
        x = ((x ^ xors[r]) * mults[r]) & mask
        x ^= x >> shift
    return x


@numba.njit(nogil=True, cache=True, inline="always")
def _unmix_bits(x, mask, shift, iters, xors, inverses):
    for r in range(1, -1, -1):
        y = x
        for _ in range(iters):           # undo x ^= x >> shift
            y = x ^ (y >> shift)
        x = ((y * inverses[r]) & mask) ^ xors[r]
    return x


@numba.njit(nogil=True, cache=True, inline="always")
def permute(v, p):
    """Image of v < n under the permutation with parameters p = Permutation.params()."""
    n, mask, shift, xors, mults = p[0], p[1], p[2], p[4], p[5]
    x = _mix_bits(np.uint64(v), mask, shift, xors, mults)
    while x >= n:
        x = _mix_bits(x, mask, shift, xors, mults)
    return np.int64(x)


@numba.njit(nogil=True, cache=True, inline="always")
def unpermute(u, p):
    """Preimage of u < n under the permutation with parameters p = Permutation.params()."""
    n, mask, shift, iters, xors, inverses = p[0], p[1], p[2], p[3], p[4], p[6]
    x = _unmix_bits(np.uint64(u), mask, shift, iters, xors, inverses)
    while x >= n:
        x = _unmix_bits(x, mask, shift, iters, xors, inverses)
    return np.int64(x)


@numba.njit(nogil=True, cache=True, parallel=True)
def uniform_block(key, start, count):
    """uniform_at(key, start + i) for i < count (random splits of nodes or pairs)."""
    out = np.empty(count, np.float64)
    for i in numba.prange(count):
        out[i] = uniform_at(key, start + i)
    return out


@numba.njit(nogil=True, cache=True, parallel=True)
def uniform_of(key, counters):
    """uniform_at(key, c) for each counter c."""
    out = np.empty(counters.shape[0], np.float64)
    for i in numba.prange(counters.shape[0]):
        out[i] = uniform_at(key, counters[i])
    return out
