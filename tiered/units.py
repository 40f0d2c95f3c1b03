"""Byte sizes as people write them ("2GiB", "512 MB", "1.5T") and as reports print them.

Suffixes: KiB/MiB/GiB/TiB are powers of 1024; kB/MB/GB/TB powers of 1000; a
bare K/M/G/T (or k/m/g/t) means the power of 1024, as in `free -g` and most
memory flags. Case is ignored except that "b" and "B" both mean bytes.
"""
from __future__ import annotations

import math
import re

_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Bytes in `value`: an int, or a string such as "2GiB", "512MB", "1.5g", "4096"."""
    if isinstance(value, bool):
        raise TypeError(f"size must be a number or a string, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value} is negative")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"size {value} is not a finite non-negative number")
        return int(value)
    m = _SIZE.match(str(value))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"cannot read size {value!r}: expected a number with an optional unit "
                         f"(B, KiB, MiB, GiB, TiB, kB, MB, GB, TB, K, M, G, T)")
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(nbytes: int | float, *, ceil: bool = False) -> str:
    """Bytes in binary units, three significant figures or so: "1.50 GiB", "512 B".

    ceil=True rounds up at the printed precision, for "at least" figures."""
    n = abs(float(nbytes))
    sign = "-" if nbytes < 0 else ""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    if i == 0:
        return f"{sign}{math.ceil(n) if ceil else int(n)} B"
    digits = 0 if n >= 100 else (1 if n >= 10 else 2)
    if ceil:
        n = math.ceil(round(n * 10**digits, 6)) / 10**digits
    return f"{sign}{n:.{digits}f} {units[i]}"
