"""The tiered-convert command line: conversions, verify, errors, interruption."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tiered import open_dataset
from tiered.convert.cli import main, parse_count

REPO = Path(__file__).resolve().parent.parent
CORA = REPO / "datasets" / "cora"


def test_planetoid_cora_and_verify(tmp_path, capsys):
    out = tmp_path / "cora"
    summary = tmp_path / "summary.json"
    assert main(["planetoid", str(CORA), str(out), "--quiet", "--summary-json",
                 str(summary)]) == 0
    text = capsys.readouterr().out
    assert "nodes 2,708" in text and "edges 10,556" in text and "in-degree min 1" in text
    s = json.loads(summary.read_text())
    assert (s["num_nodes"], s["num_edges"], s["feature_dim"], s["num_classes"]) == \
        (2708, 10556, 1433, 7)
    assert s["split_sizes"] == {"train": 140, "val": 500, "test": 1000}
    assert s["array_bytes"]["features"] >= 2708 * 1433 * 4 and s["peak_rss_bytes"] > 0

    assert main(["verify", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    chunk = next((out / "indices" / "c").iterdir())
    chunk.write_bytes(chunk.read_bytes()[:-4])
    assert main(["verify", str(out)]) == 1
    assert "indices" in capsys.readouterr().out


def test_edgelist_error_exit_status(tmp_path, capsys):
    (tmp_path / "e.txt").write_text("0 1\n2 x\n")
    assert main(["edgelist", str(tmp_path / "e.txt"), str(tmp_path / "out"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "e.txt:2: field 2: expected a non-negative integer, found 'x'" in err
    assert not (tmp_path / "out").exists()


def test_edgelist_with_options(tmp_path, capsys):
    (tmp_path / "e.csv").write_text("src,dst\n0,1\n1,1\n1,0\n0,1\n")
    np.save(tmp_path / "x.npy", np.ones((3, 2), np.float32))
    assert main(["edgelist", str(tmp_path / "e.csv"), str(tmp_path / "out"), "--header",
                 "--features", str(tmp_path / "x.npy"), "--drop-self-loops", "--dedup",
                 "--memory-limit", "64K", "--tmp-dir", str(tmp_path / "scratch"),
                 "--quiet"]) == 0
    ds = open_dataset(tmp_path / "out")
    assert (ds.num_nodes, ds.num_edges, ds.feature_dim) == (3, 2, 2)
    assert list((tmp_path / "scratch").iterdir()) == []


def test_synthetic_commands(tmp_path, capsys):
    assert main(["synthetic", str(tmp_path / "g"), "--nodes", "2K", "--edges", "20k", "--dim",
                 "8", "--dtype", "float16", "--classes", "4", "--quiet"]) == 0
    ds = open_dataset(tmp_path / "g")
    assert ds.num_nodes == 2000 and ds.feature_dtype == np.float16 and ds.num_classes == 4
    assert main(["synthetic-link", str(tmp_path / "r"), "--users", "500", "--items", "300",
                 "--interactions", "5000", "--quiet"]) == 0
    assert open_dataset(tmp_path / "r").task == "link"


def test_parse_count():
    assert parse_count("100M") == 100_000_000 and parse_count("1B") == 10**9
    assert parse_count("2.5k") == 2500 and parse_count("1e6") == 10**6


def test_interrupted_conversion_leaves_nothing(tmp_path):
    """SIGTERM mid-conversion: the temporary directory is removed, OUTPUT never appears."""
    out = tmp_path / "big"
    proc = subprocess.Popen([sys.executable, "-m", "tiered.convert.cli", "synthetic", str(out),
                             "--nodes", "3M", "--edges", "60M", "--dim", "64", "--quiet"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".big.partial")]
        if partial and any(partial[0].iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_workqueue_threading_layer_falls_back_to_one_thread(tmp_path):
    """numba's workqueue layer forbids concurrent parallel kernels: prefetching is skipped."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    res = subprocess.run([sys.executable, "-m", "tiered.convert.cli", "synthetic",
                          str(tmp_path / "g"), "--nodes", "20K", "--edges", "200K", "--dim", "16",
                          "--quiet"], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert open_dataset(tmp_path / "g").num_nodes == 20000
