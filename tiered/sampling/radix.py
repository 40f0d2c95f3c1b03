"""Stable LSD radix sort of non-negative int64 keys (numba, nogil).

The sampler sorts each hop's new node ids and the plan sorts loads that are not
already in a few sorted runs; both are hundreds of thousands of ids per batch,
where a comparison sort costs ~20x more than two or three counting passes.
"""
from __future__ import annotations

import numba
import numpy as np

_MAX_DIGIT_BITS = 12     # 4096 counters: 32 KiB, stays in L1/L2
_SMALL = 64          # below this many keys an insertion sort is faster


@numba.njit(nogil=True, cache=True)
def _insertion_sort(a, lo_bit):
    for i in range(1, a.shape[0]):
        v = a[i]
        k = v >> lo_bit
        j = i - 1
        while j >= 0 and (a[j] >> lo_bit) > k:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


@numba.njit(nogil=True, cache=True)
def radix_sort(a, tmp, lo_bit, hi_bit):
    """Sort `a` (int64, values >= 0) stably by bits [lo_bit, hi_bit) of each value.

    `tmp` is scratch of the same length. Returns whichever of the two holds the
    sorted values. Bits below `lo_bit` ride along (a payload, e.g. an index).
    """
    n = a.shape[0]
    if n < _SMALL:
        _insertion_sort(a, lo_bit)
        return a
    src = a
    dst = tmp
    shift = lo_bit
    passes = (hi_bit - lo_bit + _MAX_DIGIT_BITS - 1) // _MAX_DIGIT_BITS
    step = (hi_bit - lo_bit + passes - 1) // passes if passes else 1
    count = np.empty(1 << _MAX_DIGIT_BITS, np.int64)
    while shift < hi_bit:
        width = min(step, hi_bit - shift)
        mask = (1 << width) - 1
        count[: mask + 1] = 0
        for i in range(n):
            count[(src[i] >> shift) & mask] += 1
        if count[(src[0] >> shift) & mask] == n:      # one digit value: nothing moves
            shift += width
            continue
        total = 0
        for d in range(mask + 1):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            v = src[i]
            d = (v >> shift) & mask
            dst[count[d]] = v
            count[d] += 1
        src, dst = dst, src
        shift += width
    return src


@numba.njit(nogil=True, cache=True)
def bit_length(x):
    """Number of bits needed to write x >= 0."""
    n = 0
    while x > 0:
        x >>= 1
        n += 1
    return n
