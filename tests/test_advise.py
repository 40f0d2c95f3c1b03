"""tiered-advise: the cost model's rankings, its edge cases, the probe cache, the profile's
replay of the executor's traffic, and the config it writes running in tiered-train."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from node_data import make_node_dataset

from tiered.advise import cost, guidance, placements, probe
from tiered.train.loader import probe_batch_rows
from tiered.advise.cli import advise
from tiered.advise.profile import pages_and_runs
from tiered.dataset import open_dataset
from tiered.tiers.ssd import SSDTier
from tiered.train import Trainer, make_config
from tiered.train.cli import main as train_main


def _mem_probe(scale: float) -> dict:
    """Per-row costs growing with row size, as memory copies do."""
    entries = [{"row_bytes": rb, "rows": n, "seconds_per_row": scale * (5e-8 + rb * 2e-10),
                "cpu_per_row": scale * (5e-8 + rb * 2e-10)}
               for rb in (64, 512, 8192) for n in (1000, 100000)]
    return {"random_reads": entries, "writes": [dict(e, durable=False) for e in entries],
            "sequential_MBps": 5000 / scale, "write_MBps": 3000 / scale,
            "latency_us": 1.0 * scale, "emulated": True, "persistence": "page-cache"}


def _ssd_probe(request_s: float = 1e-5) -> dict:
    entries = [{"row_bytes": 4096, "rows": n, "queue_depth": 64, "seconds_per_row": request_s,
                "cpu_per_row": request_s / 5} for n in (256, 4096, 32768)]
    return {"random_reads": entries, "sequential_MBps": 1000.0, "page_bytes": 4096,
            "sequential_cpu_per_byte": 1e-10, "write_MBps": 300.0, "latency_us": 100.0}


PROBES = {"dram": _mem_probe(1.0), "pmem": _mem_probe(3.0), "ssd": _ssd_probe()}
WORK = cost.Workload(batches=100, row_bytes=512, superbatch=32,
                     sample_seconds_per_batch=0.01, compute_seconds_per_batch=0.05)


def _traffic(rows: float, hit: float, direct: bool = False, pmem_share: float = 0.0,
             pages_per_row: float = 1.0) -> cost.TrafficFigures:
    miss = rows * (1 - hit)
    backing = miss - rows * pmem_share
    loads = ((rows * pmem_share, backing) if pmem_share else (backing,))
    moves = ((miss * 0.5, rows * pmem_share) if pmem_share else (miss * 0.5,))
    return cost.TrafficFigures(rows, loads, moves, tuple(0.0 for _ in moves),
                               backing * pages_per_row, backing * pages_per_row * 0.9, 0.5,
                               direct)


def _place(name, on, levels=("dram",)):
    return cost.PlacementFigures(name, on, levels, {})


def test_cost_ranks_by_traffic_and_tier_speed():
    rows = 100 * 50_000
    preds = cost.rank([
        cost.predict(_place("ssd+none", "ssd", ()), _traffic(rows, 0, direct=True), WORK, PROBES),
        cost.predict(_place("ssd+lru", "ssd"), _traffic(rows, 0.4), WORK, PROBES),
        cost.predict(_place("ssd+belady", "ssd"), _traffic(rows, 0.6), WORK, PROBES),
        cost.predict(_place("pmem+belady", "pmem"), _traffic(rows, 0.6), WORK, PROBES),
        cost.predict(_place("dram", "dram", ()), _traffic(rows, 0, direct=True), WORK, PROBES),
    ])
    names = [q.name for q in preds]
    assert names == ["dram", "pmem+belady", "ssd+belady", "ssd+lru", "ssd+none"], names
    slow = {q.name: q for q in preds}
    # an SSD-bound placement is decided by the loader chain (SSD waits are not CPU work)
    assert slow["ssd+none"].bound == "loader"
    assert slow["ssd+none"].terms["load_ssd"] == pytest.approx(rows * 0.9 * 1e-5 + rows * 0.1
                                                               * 4096 / 1e9, rel=1e-6)
    assert slow["ssd+belady"].hit_rates["dram_cache"] == pytest.approx(0.6)
    for q in preds:            # every term is shown and the epoch is at least each chain
        assert {"sampling", "planning", "assemble", "move", "compute"} <= set(q.terms)
        assert q.epoch_seconds >= max(v for k, v in q.chains.items() if k != "fill")


def test_cost_compute_bound_and_pmem_cache_level():
    rows = 100 * 50_000
    heavy = cost.Workload(100, 512, 32, 0.01, 2.0)
    q = cost.predict(_place("ssd+belady", "ssd"), _traffic(rows, 0.6), heavy, PROBES)
    assert q.bound in ("compute", "cpu") and q.epoch_seconds >= 200
    two = cost.predict(_place("ssd+belady+pmem-cache", "ssd", ("dram", "pmem")),
                       _traffic(rows, 0.6, pmem_share=0.3), WORK, PROBES)
    one = cost.predict(_place("ssd+belady", "ssd"), _traffic(rows, 0.6), WORK, PROBES)
    assert two.hit_rates["pmem_cache"] == pytest.approx(0.3)
    assert two.terms["load_pmem"] > 0 and two.terms["load_ssd"] < one.terms["load_ssd"]
    assert two.epoch_seconds < one.epoch_seconds


def test_cost_without_pmem_probe():
    probes = {"dram": PROBES["dram"], "ssd": PROBES["ssd"], "pmem": None}
    q = cost.predict(_place("ssd+belady", "ssd"), _traffic(1e6, 0.5), WORK, probes)
    assert q.epoch_seconds > 0 and "pmem_cache" not in q.hit_rates
    with pytest.raises(ValueError, match="no probe figures for the pmem tier"):
        cost.predict(_place("pmem+belady", "pmem"), _traffic(1e6, 0.5), WORK, probes)
    g = guidance.pmem_guidance(probes, [q], None)
    assert g["mode"] is None and "no PMem pool" in g["reasoning"][0]


def test_guidance_reasons_from_figures():
    fast = cost.Prediction("ssd+belady+pmem-cache", 10.0, {}, "cpu", {}, {}, {})
    g = guidance.pmem_guidance(PROBES, [fast], 14.0, nodes=[{"node": 0, "cpus": "0-1",
                                                               "mem_bytes": 1 << 34}])
    assert g["mode"] == "app-direct" and g["numa_binding"] is None
    text = " ".join(g["reasoning"])
    assert "ordinary file" in text and "10.00" in text and "14.00" in text
    g = guidance.pmem_guidance(PROBES, [fast], 8.0, nodes=[
        {"node": 0, "cpus": "0-15", "mem_bytes": 1 << 36},
        {"node": 1, "cpus": "16-31", "mem_bytes": 1 << 36}])
    assert g["mode"] == "memory-mode" and g["numa_binding"].startswith("numactl --cpunodebind=")
    g = guidance.pmem_guidance(PROBES, [fast], 9.8, nodes=[])
    assert g["mode"] == "app-direct" and "within 5%" in " ".join(g["reasoning"])


def test_pages_and_runs_match_the_ssd_reader(tmp_path):
    # 512 B rows: 8 per page; adjacent pages merge into one request
    ids = np.array([0, 1, 7, 8, 24, 25, 1000], np.int32)
    pages, runs = pages_and_runs(ids, np.array([0, 7]), 512, 1 << 20, sort=False)
    assert (pages[0], runs[0]) == (4, 3)         # pages 0, 1 | 3 | 125
    make_node_dataset(tmp_path / "d", n=3000, dim=128, chunk_bytes=1 << 18)
    lay = open_dataset(tmp_path / "d").layout("features")
    rng = np.random.default_rng(1)
    batches = [np.sort(rng.choice(3000, k, replace=False)) for k in (5, 300, 2000)]
    ptr = np.cumsum([0] + [len(b) for b in batches])
    pages, _ = pages_and_runs(np.concatenate(batches), ptr, lay.row_bytes, lay.chunk_rows,
                              sort=True)
    with SSDTier(lay) as t:
        for b, p in zip(batches, pages):
            before = t.stats.bytes_read
            t.read_rows(b)
            assert t.stats.bytes_read - before == p * 4096


def test_probe_cache_is_reused_per_device(tmp_path):
    calls = []

    def run():
        calls.append(1)
        return {"tier": "ssd", "figure": len(calls)}

    a = probe.cached_probe("ssd", tmp_path, run, cache_dir=tmp_path / "c")
    b = probe.cached_probe("ssd", tmp_path, lambda: pytest.fail("probed again"),
                           cache_dir=tmp_path / "c")
    assert (a["cached"], b["cached"], b["figure"], len(calls)) == (False, True, 1, 1)
    assert b["device"]["st_dev"] == (tmp_path).stat().st_dev and b["device"]["filesystem"]
    c = probe.cached_probe("ssd", tmp_path, run, cache_dir=tmp_path / "c", reprobe=True)
    assert (c["cached"], c["figure"]) == (False, 2)
    other, _ = probe.device_key("ssd", tmp_path / "elsewhere")
    assert other != a["key"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("advise") / "ds"
    # wide rows (8 KiB): the features outweigh the SSD tier's own DRAM buffers
    make_node_dataset(root, n=3000, dim=2048, train=1200)
    return str(root)


SETTINGS = {"fanouts": "5,5", "batch_size": 128, "hidden": 16, "superbatch": 4, "epochs": 2}


def test_impossible_budget_names_what_is_needed(tiny, tmp_path):
    with pytest.raises(placements.NoPlacementError, match="at least") as e:
        advise(tiny, "64KiB", probes=PROBES, progress=False, **SETTINGS)
    msg = str(e.value)
    assert "64.0 KiB" in msg and "leanest is" in msg and "no cache" in msg
    ds = open_dataset(tiny)
    base = make_config(dataset=tiny, **SETTINGS)
    rows = probe_batch_rows(ds, base)
    need, _ = placements.needed_budget(ds, base, None, rows)
    assert f"{need}" and any(c.feasible for c in placements.candidates(ds, base, need, None, rows))
    assert not any(c.feasible for c in placements.candidates(ds, base, need - 1, None, rows))


def test_advice_config_runs_in_tiered_train_with_the_predicted_traffic(tiny, tmp_path, capsys):
    ds = open_dataset(tiny)
    base = make_config(dataset=tiny, **SETTINGS)
    rows = probe_batch_rows(ds, base)
    need, _ = placements.needed_budget(ds, base, None, rows)
    budget = need + ds.layout("features").nbytes // 6        # the features do not fit
    adv = advise(tiny, budget, out_dir=tmp_path / "out", probes=PROBES, progress=False,
                 cache_sizes=("10%",), **SETTINGS)
    names = [r["name"] for r in adv["ranking"]]
    assert "features in DRAM" in [c["name"] for c in adv["infeasible"]]
    assert {"ssd+belady", "ssd+lru", "ssd+none"} <= set(names)
    assert json.loads((tmp_path / "out" / "advice.json").read_text())["recommended"] == names[0]
    assert (tmp_path / "out" / "advice.png").stat().st_size > 1000
    cfg_file = tmp_path / "out" / "advice.yaml"
    settings = yaml.safe_load(cfg_file.read_text())
    assert settings["features_on"] in ("ssd", "pmem", "dram")
    assert train_main(["--config", str(cfg_file), "--epochs", "1", "--no-progress"]) == 0
    assert "trained 1 epoch" in capsys.readouterr().out
    # the placement and the warm epoch's DRAM hit rate are what the advisor predicted
    top = next(r for r in adv["ranking"] if r["name"] == "ssd+belady")
    tr = Trainer(make_config(**{**top["settings"], "progress": False}))
    try:
        assert tr.loader.placement.cache_rows == top["dram_cache_rows"] > 0
        tr.fit()
    finally:
        tr.loader.close()
    assert tr.history[1].hit_rate == pytest.approx(top["hit_rates"]["dram_cache"], abs=1e-9)
