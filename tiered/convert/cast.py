"""float32 -> float16 conversion in parallel numba, reporting overflow.

numpy's astype(float16) runs on one core and would take longer than
generating the features of a large synthetic graph; numba has no float16
type, so the conversion works on the IEEE bit patterns (round to nearest
even, like numpy) and writes uint16 viewed as float16.
"""
from __future__ import annotations

import numba
import numpy as np



@numba.njit(nogil=True, cache=True, inline="always")
def _half_bits(b):
    """float16 bits of the float32 with bits b (uint32 as int64), round to nearest even."""
    sign = (b >> 16) & 0x8000
    exp = (b >> 23) & 0xFF
    mant = b & 0x7FFFFF
    if exp == 0xFF:                                   # inf / nan
        return sign | 0x7C00 | (0x200 if mant else 0)
    e = exp - 112                                     # rebias 127 -> 15
    if e >= 0x1F:
        return sign | 0x7C00
    if e <= 0:                                        # float16 subnormal or zero
        if e < -10:
            return sign
        mant |= 0x800000
        shift = 14 - e
        half = mant >> shift
        rem = mant & ((1 << shift) - 1)
        halfway = 1 << (shift - 1)
        if rem > halfway or (rem == halfway and (half & 1)):
            half += 1
        return sign | half
    half = (e << 10) | (mant >> 13)
    rem = mant & 0x1FFF
    if rem > 0x1000 or (rem == 0x1000 and (half & 1)):
        half += 1                                     # a carry into the exponent is right
    return sign | half


@numba.njit(nogil=True, cache=True, parallel=True)
def _to_half(bits, out, parts):
    """Convert in `parts` slices; returns the first index whose finite value overflowed,
    or -1."""
    n = bits.shape[0]
    first = np.full(parts, n, np.int64)
    chunk = (n + first.shape[0] - 1) // first.shape[0]
    for t in numba.prange(first.shape[0]):
        for i in range(t * chunk, min(n, (t + 1) * chunk)):
            b = np.int64(bits[i])
            h = _half_bits(b)
            out[i] = h
            if (h & 0x7FFF) == 0x7C00 and ((b >> 23) & 0xFF) != 0xFF and first[t] == n:
                first[t] = i
    k = first.min()
    return k if k < n else -1


def to_float16(block: np.ndarray) -> tuple[np.ndarray, int]:
    """block as float16, and the flat index of the first finite value that overflowed
    (beyond +-65504) or -1. float32 input takes the parallel path."""
    if block.dtype != np.float32:
        out = block.astype(np.float16)
        bad = np.isinf(out) & np.isfinite(block)
        return out, int(np.argmax(bad)) if bad.any() else -1
    src = np.ascontiguousarray(block)
    out = np.empty(src.shape, np.float16)
    k = _to_half(src.reshape(-1).view(np.uint32), out.reshape(-1).view(np.uint16),
                 numba.get_num_threads())
    return out, int(k)
