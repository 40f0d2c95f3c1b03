"""Block-wise parsing of numeric text tables (plain or gzip) with numba kernels.

Text is read in blocks of bytes cut at the last newline; a numba kernel
tokenises a whole block (fields separated by spaces, tabs or one comma;
lines starting with '#' or '%' and blank lines are skipped) and writes the
numbers into preallocated arrays. Python only loops per block. On malformed
input the kernel stops and reports where, so every error names the file, the
line, the field, and what was expected vs found.
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numba
import numpy as np

from .options import ConvertError

KIND_ID = 0       # non-negative integer (a node id)
KIND_INT = 1      # signed integer
KIND_FLOAT = 2    # floating point, also nan / inf

_OK, _E_TOKEN, _E_FIELDS, _E_EMPTY, _E_OVERFLOW = 0, 1, 2, 3, 4
_EXPECTED = {KIND_ID: "a non-negative integer", KIND_INT: "an integer",
             KIND_FLOAT: "a number"}
_INT64_MAX = np.int64(2**63 - 1)
_POW10 = np.array([10.0 ** k for k in range(23)])
DEFAULT_BLOCK_BYTES = 16 << 20


@numba.njit(nogil=True, cache=True, inline="always")
def _is_space(c):
    return c == 32 or c == 9 or c == 13


@numba.njit(nogil=True, cache=True, inline="always")
def _is_end(c):
    return c == 32 or c == 9 or c == 13 or c == 44 or c == 10


@numba.njit(nogil=True, cache=True)
def _parse_int(buf, i, n, signed):
    """Parse an integer at buf[i]; returns (value, next index, error code)."""
    neg = False
    if i < n and (buf[i] == 45 or buf[i] == 43):          # '-' '+'
        if buf[i] == 45:
            if not signed:
                return 0, i, _E_TOKEN
            neg = True
        i += 1
    start = i
    v = np.int64(0)
    while i < n and 48 <= buf[i] <= 57:
        d = np.int64(buf[i] - 48)
        if v > (_INT64_MAX - d) // 10:
            return 0, start, _E_OVERFLOW
        v = v * 10 + d
        i += 1
    if i == start or (i < n and not _is_end(buf[i])):
        return 0, i, _E_TOKEN
    return (-v if neg else v), i, _OK


@numba.njit(nogil=True, cache=True)
def _match_word(buf, i, n, word):
    """Case-insensitive match of an ASCII word (lower-case bytes) at buf[i]."""
    if i + len(word) > n:
        return False
    for k in range(len(word)):
        c = np.int64(buf[i + k])
        if 65 <= c <= 90:
            c += 32
        if c != word[k]:
            return False
    return True


_NAN = np.frombuffer(b"nan", np.uint8)
_INF = np.frombuffer(b"inf", np.uint8)
_INFINITY = np.frombuffer(b"infinity", np.uint8)


@numba.njit(nogil=True, cache=True)
def _parse_float(buf, i, n, pow10, w_nan, w_inf, w_infinity):
    """Parse a decimal float at buf[i]; returns (value, next index, error code).

    Up to 19 significant digits are kept exactly in an integer, then scaled by
    an exact power of ten: within an ulp or two of float64, far below float32's.
    """
    sign = 1.0
    if i < n and (buf[i] == 45 or buf[i] == 43):
        if buf[i] == 45:
            sign = -1.0
        i += 1
    if _match_word(buf, i, n, w_nan):
        j = i + 3
        if j >= n or _is_end(buf[j]):
            return np.nan, j, _OK
    if _match_word(buf, i, n, w_infinity):
        j = i + 8
        if j >= n or _is_end(buf[j]):
            return sign * np.inf, j, _OK
    if _match_word(buf, i, n, w_inf):
        j = i + 3
        if j >= n or _is_end(buf[j]):
            return sign * np.inf, j, _OK
    mant = np.uint64(0)
    digits = 0
    exp = 0
    seen = False
    while i < n and 48 <= buf[i] <= 57:
        seen = True
        if digits < 19:
            mant = mant * np.uint64(10) + np.uint64(buf[i] - 48)
            if mant:
                digits += 1
        else:
            exp += 1
        i += 1
    if i < n and buf[i] == 46:                            # '.'
        i += 1
        while i < n and 48 <= buf[i] <= 57:
            seen = True
            if digits < 19:
                mant = mant * np.uint64(10) + np.uint64(buf[i] - 48)
                if mant:
                    digits += 1
                exp -= 1
            i += 1
    if not seen:
        return 0.0, i, _E_TOKEN
    if i < n and (buf[i] == 101 or buf[i] == 69):         # 'e' 'E'
        i += 1
        esign = 1
        if i < n and (buf[i] == 45 or buf[i] == 43):
            if buf[i] == 45:
                esign = -1
            i += 1
        start = i
        e = 0
        while i < n and 48 <= buf[i] <= 57:
            if e < 100000:
                e = e * 10 + (buf[i] - 48)
            i += 1
        if i == start:
            return 0.0, i, _E_TOKEN
        exp += esign * e
    if i < n and not _is_end(buf[i]):
        return 0.0, i, _E_TOKEN
    v = float(mant)
    if exp == 0 or mant == 0:
        pass
    elif 0 < exp <= 22:
        v *= pow10[exp]
    elif -22 <= exp < 0:
        v /= pow10[-exp]
    elif exp > 0:
        v *= 10.0 ** exp
    else:
        v /= 10.0 ** min(-exp, 308)
        if -exp > 308:
            v /= 10.0 ** (-exp - 308)
    return sign * v, i, _OK


@numba.njit(nogil=True, cache=True)
def _skip_line(buf, i, n):
    while i < n and buf[i] != 10:
        i += 1
    return i


@numba.njit(nogil=True, cache=True)
def _count_fields(buf, i, n):
    """Number of fields on the line starting at i (for error messages)."""
    count = 0
    in_tok = False
    while i < n and buf[i] != 10:
        if _is_end(buf[i]):
            in_tok = False
        elif not in_tok:
            in_tok = True
            count += 1
        i += 1
    return count


@numba.njit(nogil=True, cache=True)
def _parse_table(buf, kinds, min_cols, out_i, out_f, row_line, pow10, w_nan, w_inf, w_infinity):
    """Parse complete lines of buf into rows of len(kinds) max fields.

    Returns (rows, lines, err, err_line, err_field, err_pos, found_fields);
    err is 0 when the block parsed cleanly.
    """
    n = buf.shape[0]
    maxc = kinds.shape[0]
    i = 0
    line = 0
    row = 0
    while i < n:
        j = i
        while j < n and _is_space(buf[j]):
            j += 1
        if j >= n:
            break
        c = buf[j]
        if c == 10:
            i = j + 1
            line += 1
            continue
        if c == 35 or c == 37:                            # '#' '%': comment line
            i = _skip_line(buf, j, n) + 1
            line += 1
            continue
        col = 0
        while True:
            if j >= n or buf[j] == 10 or buf[j] == 44:
                return row, line, _E_EMPTY, line, col, j, 0
            if col >= maxc:
                return row, line, _E_FIELDS, line, col, i, _count_fields(buf, i, n)
            k = kinds[col]
            if k == 2:
                fv, j2, err = _parse_float(buf, j, n, pow10, w_nan, w_inf, w_infinity)
                if err:
                    return row, line, err, line, col, j, 0
                out_f[row, col] = fv
            else:
                iv, j2, err = _parse_int(buf, j, n, k == 1)
                if err:
                    return row, line, err, line, col, j, 0
                out_i[row, col] = iv
            j = j2
            col += 1
            while j < n and _is_space(buf[j]):
                j += 1
            if j >= n or buf[j] == 10:
                break
            if buf[j] == 44:
                j += 1
                while j < n and _is_space(buf[j]):
                    j += 1
        if col < min_cols:
            return row, line, _E_FIELDS, line, col, i, col
        row_line[row] = line
        row += 1
        i = j + 1
        line += 1
    return row, line, _OK, 0, 0, 0, 0


@numba.njit(nogil=True, cache=True)
def _parse_adjacency(buf, out_a, out_b, pair_line):
    """Parse 'a b c ...' lines into pairs (a,b), (a,c), ...; all non-negative integers.

    Returns (pairs, lines, err, err_line, err_field, err_pos).
    """
    n = buf.shape[0]
    i = 0
    line = 0
    p = 0
    while i < n:
        j = i
        while j < n and _is_space(buf[j]):
            j += 1
        if j >= n:
            break
        c = buf[j]
        if c == 10:
            i = j + 1
            line += 1
            continue
        if c == 35 or c == 37:
            i = _skip_line(buf, j, n) + 1
            line += 1
            continue
        col = 0
        head = np.int64(0)
        while True:
            if j >= n or buf[j] == 10 or buf[j] == 44:
                return p, line, _E_EMPTY, line, col, j
            v, j2, err = _parse_int(buf, j, n, False)
            if err:
                return p, line, err, line, col, j
            if col == 0:
                head = v
            else:
                out_a[p] = head
                out_b[p] = v
                pair_line[p] = line
                p += 1
            j = j2
            col += 1
            while j < n and _is_space(buf[j]):
                j += 1
            if j >= n or buf[j] == 10:
                break
            if buf[j] == 44:
                j += 1
                while j < n and _is_space(buf[j]):
                    j += 1
        i = j + 1
        line += 1
    return p, line, _OK, 0, 0, 0


def is_gzip(path: Path) -> bool:
    """Whether a file is gzip-compressed (told by its magic number, not its name)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_binary(path: Path) -> BinaryIO:
    """Open a plain or gzip file for reading bytes."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def iter_line_blocks(path: Path, block_bytes: int = DEFAULT_BLOCK_BYTES
                     ) -> Iterator[tuple[np.ndarray, int]]:
    """Yield (bytes of whole lines as uint8, number of lines before them) from a text file.

    Truncated or corrupt gzip data raises ConvertError naming the file and the
    last complete line read.
    """
    lines_before = 0
    tail = b""
    try:
        f = open_binary(path)
    except OSError as e:
        raise ConvertError(f"{path}: cannot open ({e.strerror or e})") from e
    with f:
        while True:
            try:
                data = f.read(block_bytes)
            except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
                raise ConvertError(f"{path}: truncated or corrupt gzip data after line "
                                   f"{lines_before} ({e})") from e
            if not data:
                if tail:
                    yield np.frombuffer(tail, np.uint8), lines_before
                return
            data = tail + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                tail = data
                continue
            body, tail = data[:cut], data[cut:]
            arr = np.frombuffer(body, np.uint8)
            yield arr, lines_before
            lines_before += int(np.count_nonzero(arr == 10))


def _token(buf: np.ndarray, pos: int) -> str:
    end = pos
    while end < len(buf) and end - pos < 40 and buf[end] not in (32, 9, 13, 44, 10):
        end += 1
    text = bytes(buf[pos:end]).decode("utf-8", "replace")
    return repr(text) if text else "nothing"


def _raise(path: Path, buf: np.ndarray, lines_before: int, err: int, err_line: int,
           field: int, pos: int, expected: str, found_fields: int = 0) -> None:
    where = f"{path}:{lines_before + err_line + 1}"
    if err == _E_FIELDS:
        raise ConvertError(f"{where}: expected {expected}, found {found_fields} "
                           f"(ragged row)")
    if err == _E_EMPTY:
        raise ConvertError(f"{where}: field {field + 1} is empty")
    if err == _E_OVERFLOW:
        raise ConvertError(f"{where}: field {field + 1}: {_token(buf, pos)} does not fit "
                           f"a 64-bit integer")
    raise ConvertError(f"{where}: field {field + 1}: expected {expected}, found "
                       f"{_token(buf, pos)}")


@dataclass
class TableBlock:
    """Rows parsed from one block of a text table, with their 1-based line numbers."""

    ints: np.ndarray      # (rows, ncols) int64; columns of float kind are unset
    floats: np.ndarray    # (rows, ncols) float64; columns of integer kind are unset
    lines: np.ndarray     # (rows,) int64, 1-based line number of each row
    path: Path

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}"


def iter_table(path: Path, kinds: list[int], skip_header: bool = False,
               block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[TableBlock]:
    """Yield TableBlocks of a text table with exactly len(kinds) fields per row."""
    path = Path(path)
    kinds_a = np.asarray(kinds, np.int8)
    maxc = len(kinds_a)
    any_int = bool((kinds_a != KIND_FLOAT).any())
    any_float = bool((kinds_a == KIND_FLOAT).any())
    expected = f"{maxc} field{'s' if maxc != 1 else ''}"
    col_expect = [_EXPECTED[int(k)] for k in kinds_a]
    header_pending = skip_header
    for buf, lines_before in iter_line_blocks(path, block_bytes):
        start = 0
        if header_pending:
            start = int(np.argmax(buf == 10)) + 1 if (buf == 10).any() else len(buf)
            header_pending = False
            lines_before += 1
            buf = buf[start:]
        cap = int(np.count_nonzero(buf == 10)) + 1
        out_i = np.empty((cap if any_int else 0, maxc), np.int64)
        out_f = np.empty((cap if any_float else 0, maxc), np.float64)
        row_line = np.empty(cap, np.int64)
        rows, _, err, err_line, field, pos, found = _parse_table(
            buf, kinds_a, maxc, out_i, out_f, row_line, _POW10, _NAN, _INF, _INFINITY)
        if err:
            exp = expected if err == _E_FIELDS else col_expect[min(field, maxc - 1)]
            _raise(path, buf, lines_before, err, err_line, field, pos, exp, found)
        yield TableBlock(out_i[:rows], out_f[:rows], row_line[:rows] + lines_before + 1, path)


@dataclass
class PairBlock:
    """(head, other) pairs parsed from adjacency lines, with 1-based line numbers."""

    heads: np.ndarray
    others: np.ndarray
    lines: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, row: int) -> str:
        return f"{self.path}:{int(self.lines[row])}"


def iter_adjacency(path: Path, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[PairBlock]:
    """Yield pairs from 'head x y z ...' lines (LightGCN / adjacency-list files)."""
    path = Path(path)
    for buf, lines_before in iter_line_blocks(path, block_bytes):
        sep = (buf == 32) | (buf == 9) | (buf == 44)
        cap = int(np.count_nonzero(sep)) + 1
        heads = np.empty(cap, np.int64)
        others = np.empty(cap, np.int64)
        pair_line = np.empty(cap, np.int64)
        pairs, _, err, err_line, field, pos = _parse_adjacency(buf, heads, others, pair_line)
        if err:
            _raise(path, buf, lines_before, err, err_line, field, pos,
                   "a non-negative integer id")
        yield PairBlock(heads[:pairs], others[:pairs], pair_line[:pairs] + lines_before + 1, path)


def first_row_fields(path: Path, skip_header: bool = False) -> int:
    """Number of fields on the first data row of a text table (0 if it has none)."""
    for buf, _ in iter_line_blocks(Path(path), 1 << 20):
        for raw in bytes(buf).split(b"\n"):
            if skip_header:
                skip_header = False
                continue
            line = raw.strip()
            if not line or line[:1] in (b"#", b"%"):
                continue
            return len([t for t in line.replace(b",", b" ").split() if t])
    return 0
