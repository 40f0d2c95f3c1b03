"""The numba text parser: numbers as numpy parses them, errors at the right file and line."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from tiered.convert import ConvertError
from tiered.convert.textparse import (KIND_FLOAT, KIND_ID, KIND_INT, first_row_fields,
                                      iter_adjacency, iter_table)


def table(path, kinds, block_bytes=1 << 16, header=False):
    blocks = list(iter_table(path, kinds, header, block_bytes))
    ints = np.concatenate([b.ints for b in blocks]) if blocks else None
    floats = np.concatenate([b.floats for b in blocks]) if blocks else None
    lines = np.concatenate([b.lines for b in blocks])
    return ints, floats, lines


def test_separators_comments_blank_lines_and_crlf(tmp_path):
    p = tmp_path / "e.txt"
    p.write_bytes(b"# header comment\n1 2\r\n3,4\n\n% other comment\n  5\t6  \n7 ,\t8\n9 10")
    ints, _, lines = table(p, [KIND_ID, KIND_ID])
    np.testing.assert_array_equal(ints, [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(lines, [2, 3, 6, 7, 8])


def test_floats_round_trip_like_numpy(tmp_path):
    rng = np.random.default_rng(0)
    vals = rng.standard_normal(20000) * 10.0 ** rng.integers(-30, 30, 20000)
    text = "\n".join(f"{float(v)!r} {v:.6e} {v:.3f}" for v in vals)
    p = tmp_path / "f.txt"
    p.write_text(text + "\nnan -inf Infinity\n1e5 +2.5 -.5\n")
    _, f, _ = table(p, [KIND_FLOAT] * 3, block_bytes=4096)
    ref = np.array([line.split() for line in p.read_text().split("\n") if line], float)
    np.testing.assert_allclose(f[:-2], ref[:-2], rtol=1e-15, atol=0)
    assert np.isnan(f[-2, 0]) and f[-2, 1] == -np.inf and f[-2, 2] == np.inf
    np.testing.assert_array_equal(f[-1], [1e5, 2.5, -0.5])


def test_block_boundaries_and_gzip(tmp_path):
    rng = np.random.default_rng(1)
    e = rng.integers(0, 10**9, (5000, 2))
    plain = tmp_path / "e.txt"
    np.savetxt(plain, e, fmt="%d")
    gz = tmp_path / "e.txt.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    for p in (plain, gz):
        ints, _, lines = table(p, [KIND_ID, KIND_ID], block_bytes=1000)
        np.testing.assert_array_equal(ints, e)
        np.testing.assert_array_equal(lines, np.arange(1, 5001))


def test_signed_ints_and_header(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("label\n3\n-1\n+7\n")
    ints, _, lines = table(p, [KIND_INT], header=True)
    np.testing.assert_array_equal(ints[:, 0], [3, -1, 7])
    np.testing.assert_array_equal(lines, [2, 3, 4])


@pytest.mark.parametrize("text, message", [
    ("1 2\n3 x\n", r"e.txt:2: field 2: expected a non-negative integer, found 'x'"),
    ("1 2\n3 -4\n", r"e.txt:2: field 2: expected a non-negative integer, found '-4'"),
    ("1 2\n3 4 5\n", r"e.txt:2: expected 2 fields, found 3 \(ragged row\)"),
    ("1 2\n\n3\n", r"e.txt:3: expected 2 fields, found 1 \(ragged row\)"),
    ("1,,2\n", r"e.txt:1: field 2 is empty"),
    ("1 2.5\n", r"e.txt:1: field 2: expected a non-negative integer, found '2.5'"),
    ("99999999999999999999 1\n", r"e.txt:1: field 1: '99999999999999999999' does not fit"),
])
def test_malformed_lines_are_located(tmp_path, text, message):
    p = tmp_path / "e.txt"
    p.write_text(text)
    with pytest.raises(ConvertError, match=message):
        table(p, [KIND_ID, KIND_ID])


def test_truncated_gzip_names_file_and_last_line(tmp_path):
    plain = "".join(f"{i} {i + 1}\n" for i in range(200000)).encode()
    data = gzip.compress(plain)
    p = tmp_path / "e.txt.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvertError, match=r"e.txt.gz: truncated or corrupt gzip data after "
                                           r"line \d+"):
        table(p, [KIND_ID, KIND_ID], block_bytes=1 << 16)


def test_adjacency_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0 5 6 7\n1\n2 9\n# c\n3 1 1\n")
    blocks = list(iter_adjacency(p))
    heads = np.concatenate([b.heads for b in blocks])
    others = np.concatenate([b.others for b in blocks])
    np.testing.assert_array_equal(heads, [0, 0, 0, 2, 3, 3])
    np.testing.assert_array_equal(others, [5, 6, 7, 9, 1, 1])
    assert blocks[0].where(3) == f"{p}:3"
    p.write_text("0 5\n1 x\n")
    with pytest.raises(ConvertError, match=r"a.txt:2: field 2"):
        list(iter_adjacency(p))


def test_first_row_fields(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("# comment\n\n0.1,0.2,0.3\n")
    assert first_row_fields(p) == 3
