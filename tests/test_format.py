"""The dataset format: zarr readers open it, open_dataset checks it, verify finds every problem."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import zarr

from tiered import FormatError, open_dataset, verify_dataset, write_array
from node_data import write_node_arrays
from tiered.format import ArrayWriter, choose_chunk_rows


def make_dataset(root, n=500, e=3000, dim=6, classes=4, chunk_bytes=4096, seed=0):
    rng = np.random.default_rng(seed)
    dst = np.sort(rng.integers(0, n, e))
    src = rng.integers(0, n, e).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))]).astype(np.int64)
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    labels = rng.integers(0, classes, n).astype(np.int64)
    arrays = dict(indptr=indptr, indices=src, features=feats, labels=labels,
                  train_idx=np.arange(0, 50), val_idx=np.arange(50, 100), test_idx=np.arange(100, 200))
    write_node_arrays(root, arrays, classes, chunk_bytes)
    return arrays


def test_zarr_reads_every_array(tmp_path):
    arrays = make_dataset(tmp_path)
    g = zarr.open_group(tmp_path, mode="r")
    assert g.attrs["num_nodes"] == 500
    for name, a in arrays.items():
        assert np.array_equal(g[name][:], a), name


def test_chunk_files_hold_raw_row_major_bytes(tmp_path):
    arrays = make_dataset(tmp_path, chunk_bytes=1024)
    ds = open_dataset(tmp_path)
    lay = ds.layout("features")
    raw = b"".join(p.read_bytes() for p in lay.chunk_paths())
    assert raw[:lay.nbytes] == arrays["features"].tobytes()
    assert lay.chunk_rows & (lay.chunk_rows - 1) == 0          # power of two


def test_open_dataset_reports_attributes(tmp_path):
    make_dataset(tmp_path)
    ds = open_dataset(tmp_path)
    assert (ds.num_nodes, ds.num_edges, ds.feature_dim, ds.num_classes) == (500, 3000, 6, 4)
    assert ds.splits == ["train", "val", "test"] and ds.task == "node"
    assert np.array_equal(ds.split("val"), np.arange(50, 100))
    assert verify_dataset(tmp_path) == []


def test_missing_directory_and_group(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(FormatError, match="zarr.json: missing"):
        open_dataset(tmp_path)


def test_truncated_file_names_file_and_sizes(tmp_path):
    make_dataset(tmp_path)
    lay = open_dataset(tmp_path).layout("features")
    victim = lay.chunk_paths()[0]
    os.truncate(victim, 17)
    with pytest.raises(FormatError, match=rf"{victim}.*17 bytes, expected {lay.chunk_bytes}"):
        open_dataset(tmp_path)


def test_dtype_contradicting_attributes(tmp_path):
    make_dataset(tmp_path)
    meta = json.loads((tmp_path / "zarr.json").read_text())
    meta["attributes"]["feature_dtype"] = "float16"
    (tmp_path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="features.*dtype float32, expected float16"):
        open_dataset(tmp_path)


def test_indptr_must_be_monotone_and_end_at_num_edges(tmp_path):
    arrays = make_dataset(tmp_path)
    bad = arrays["indptr"].copy()
    bad[10], bad[11] = bad[11] + 5, bad[10]
    write_array(tmp_path, "indptr", bad, chunk_bytes=4096)
    with pytest.raises(FormatError, match="indptr decreases at row"):
        open_dataset(tmp_path)
    short = arrays["indptr"].copy()
    short[-1] -= 1
    write_array(tmp_path, "indptr", short, chunk_bytes=4096)
    with pytest.raises(FormatError, match="ends at 2999, expected num_edges = 3000"):
        open_dataset(tmp_path)


def test_verify_reports_every_problem(tmp_path):
    arrays = make_dataset(tmp_path)
    idx = arrays["indices"].copy()
    idx[7] = 500
    write_array(tmp_path, "indices", idx, chunk_bytes=4096)
    lab = arrays["labels"].copy()
    lab[3] = 9
    write_array(tmp_path, "labels", lab, chunk_bytes=4096)
    write_array(tmp_path, "test_idx", np.arange(90, 120), chunk_bytes=4096)
    problems = verify_dataset(tmp_path)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "indices[7] = 500 out of range [0, 500)" in text
    assert "labels[3] = 9" in text
    assert "'test' overlaps" in text


def test_writer_rejects_wrong_row_count(tmp_path):
    w = ArrayWriter(tmp_path, "x", (10, 3), np.float32)
    w.write(np.zeros((4, 3), np.float32))
    with pytest.raises(FormatError, match="wrote 4 rows, expected 10"):
        w.close()
    with pytest.raises(FormatError, match="past 10 rows"):
        ArrayWriter(tmp_path, "y", (10, 3), np.float32).write(np.zeros((11, 3), np.float32))


def test_chunk_rows_rule():
    assert choose_chunk_rows(100, 8, 1 << 20) == 100            # fits: one exact chunk
    assert choose_chunk_rows(10**6, 512, 1 << 20) == 2048
    assert choose_chunk_rows(10**6, 5732, 1 << 20) == 128       # power of two below 182
