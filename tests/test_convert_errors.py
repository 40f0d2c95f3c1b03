"""Malformed input fails with the file and line (or array) and expected vs found, and leaves
no output directory (nor temporary or scratch files) behind."""
from __future__ import annotations

import gzip
import shutil
from collections import namedtuple

import numpy as np
import pytest

from tiered.convert import (ConvertError, ConvertOptions, convert_edgelist, convert_lightgcn,
                            convert_npy, generate_synthetic, open_rows)


def opts(**kw):
    return ConvertOptions(memory_limit=1 << 20, progress=False, chunk_bytes=1 << 14, **kw)


def fails(tmp_path, match, fn, *args, **kwargs):
    out = tmp_path / "out"
    with pytest.raises(ConvertError, match=match):
        fn(*args, out, **kwargs)
    assert not out.exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert left == [], f"temporary files left behind: {left}"


def edges(tmp_path, text, name="e.txt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_non_integer_id(tmp_path):
    p = edges(tmp_path, "0 1\n1 2\nfoo 3\n")
    fails(tmp_path, r"e.txt:3: field 1: expected a non-negative integer, found 'foo'",
          convert_edgelist, p, options=opts())


def test_negative_id(tmp_path):
    p = edges(tmp_path, "0 1\n1 -2\n")
    fails(tmp_path, r"e.txt:2: field 2: expected a non-negative integer, found '-2'",
          convert_edgelist, p, options=opts())


def test_ragged_csv_row(tmp_path):
    p = edges(tmp_path, "0,1\n1,2,3\n", "e.csv")
    fails(tmp_path, r"e.csv:2: expected 2 fields, found 3 \(ragged row\)",
          convert_edgelist, p, options=opts())


def test_truncated_gzip(tmp_path):
    data = gzip.compress("".join(f"{i} {i + 1}\n" for i in range(300000)).encode())
    p = tmp_path / "e.txt.gz"
    p.write_bytes(data[: len(data) * 2 // 3])
    fails(tmp_path, r"e.txt.gz: truncated or corrupt gzip data after line \d+",
          convert_edgelist, p, options=opts())


def test_id_beyond_the_node_count(tmp_path):
    p = edges(tmp_path, "0 1\n1 12\n")
    fails(tmp_path, r"e.txt:2: node id 12 out of range \[0, 10\)",
          convert_edgelist, p, num_nodes=10, options=opts())


def test_feature_rows_not_matching_the_node_count(tmp_path):
    p = edges(tmp_path, "0 1\n1 9\n")
    np.save(tmp_path / "x.npy", np.zeros((7, 3), np.float32))
    fails(tmp_path, r"x.npy: 7 feature rows, expected 10 \(one per node",
          convert_edgelist, p, num_nodes=10,
          features=open_rows(tmp_path / "x.npy", "features"), options=opts())
    (tmp_path / "x.csv").write_text("1,2\n3,4\n5,6\n")            # 3 rows, 10 nodes
    fails(tmp_path, r"x.csv: 3 feature rows, expected 10",
          convert_edgelist, p, features=open_rows(tmp_path / "x.csv", "features"),
          options=opts())
    (tmp_path / "x.csv").write_text("1,2\n" * 12)
    fails(tmp_path, r"x.csv:11: more feature rows than the 10 nodes",
          convert_edgelist, p, features=open_rows(tmp_path / "x.csv", "features"),
          options=opts())
    (tmp_path / "x.csv").write_text("1,2\n" * 4 + "1,2,3\n")
    fails(tmp_path, r"x.csv:5: expected 2 fields, found 3",
          convert_edgelist, p, features=open_rows(tmp_path / "x.csv", "features"),
          options=opts())


def test_labels_out_of_range(tmp_path):
    p = edges(tmp_path, "0 1\n1 3\n")
    (tmp_path / "y.txt").write_text("0\n1\n5\n2\n")
    fails(tmp_path, r"y.txt:3: label 5 out of range \[0, 3\)", convert_edgelist, p,
          labels=open_rows(tmp_path / "y.txt", "labels"), num_classes=3, options=opts())
    (tmp_path / "y.txt").write_text("0\n-3\n1\n1\n")
    fails(tmp_path, r"y.txt:2: label -3 is negative", convert_edgelist, p,
          labels=open_rows(tmp_path / "y.txt", "labels"), options=opts())
    (tmp_path / "y.txt").write_text("0\n1.5\n1\n1\n")
    fails(tmp_path, r"y.txt:2: label 1.5 is not an integer", convert_edgelist, p,
          labels=open_rows(tmp_path / "y.txt", "labels"), options=opts())
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 9]))
    fails(tmp_path, r"y.npy: row 3: label 9 out of range \[0, 4\)", convert_edgelist, p,
          labels=open_rows(tmp_path / "y.npy", "labels"), num_classes=4, options=opts())


def test_split_ids_out_of_range_or_unlabelled(tmp_path):
    p = edges(tmp_path, "0 1\n1 3\n")
    (tmp_path / "y.txt").write_text("0\n1\n-1\n1\n")
    (tmp_path / "train.txt").write_text("0\n99\n")
    fails(tmp_path, r"train.txt:2: node id 99 out of range \[0, 4\)", convert_edgelist, p,
          labels=open_rows(tmp_path / "y.txt", "labels"),
          train=open_rows(tmp_path / "train.txt", "ids"), options=opts())
    (tmp_path / "train.txt").write_text("0\n2\n")
    fails(tmp_path, r"train.txt: split 'train' holds 1 unlabelled nodes \(first: node 2\)",
          convert_edgelist, p, labels=open_rows(tmp_path / "y.txt", "labels"),
          train=open_rows(tmp_path / "train.txt", "ids"), options=opts())


def test_npy_negative_edge(tmp_path):
    np.savez(tmp_path / "g.npz", edge_index=np.array([[0, 1, 2, 3], [1, 2, -1, 0]]))
    fails(tmp_path, r"g.npz\[edge_index\]: edge 2: negative node id -1", convert_npy,
          tmp_path / "g.npz", options=opts())


def test_npy_truncated_file(tmp_path):
    np.save(tmp_path / "ei.npy", np.zeros((2, 1000), np.int64))
    data = (tmp_path / "ei.npy").read_bytes()
    (tmp_path / "ei.npy").write_bytes(data[:4000])
    fails(tmp_path, r"ei.npy: file is truncated", convert_npy, tmp_path / "ei.npy",
          options=opts())


def test_float16_overflow(tmp_path):
    p = edges(tmp_path, "0 1\n1 2\n")
    np.save(tmp_path / "x.npy", np.array([[1, 2], [3, 1e6], [5, 6]], np.float32))
    fails(tmp_path, r"x.npy: row 1: feature value 1e\+06 overflows float16",
          convert_edgelist, p, features=open_rows(tmp_path / "x.npy", "features"),
          options=opts(feature_dtype="float16"))


def test_lightgcn_bad_token(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 3 x4\n")
    (tmp_path / "test.txt").write_text("0 1\n")
    fails(tmp_path, r"train.txt:2: field 3: expected a non-negative integer id, found 'x4'",
          convert_lightgcn, tmp_path, options=opts())


def test_existing_output_needs_overwrite(tmp_path):
    p = edges(tmp_path, "0 1\n1 2\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep").write_text("x")
    with pytest.raises(ConvertError, match="already exists"):
        convert_edgelist(p, tmp_path / "out", options=opts())
    assert (tmp_path / "out" / "keep").exists()
    convert_edgelist(p, tmp_path / "out", options=opts(overwrite=True))
    assert not (tmp_path / "out" / "keep").exists() and (tmp_path / "out" / "zarr.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_disk_space_is_checked_first(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 4096, 4096))
    fails(tmp_path, r"not enough disk space for .*: about .* needed .*only 4\.00 KiB free",
          generate_synthetic, nodes=10000, edges=100000, dim=16, options=opts())


def test_failure_midway_removes_partial_output(tmp_path, monkeypatch):
    """An error after arrays were written (here: in features) leaves nothing behind."""
    p = edges(tmp_path, "0 1\n1 2\n2 3\n")
    (tmp_path / "x.csv").write_text("1\n2\n3\nbad\n")
    fails(tmp_path, r"x.csv:4: field 1: expected a number, found 'bad'", convert_edgelist, p,
          features=open_rows(tmp_path / "x.csv", "features"), options=opts())
