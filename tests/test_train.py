"""Training semantics: out of core equals in DRAM, resume equals uninterrupted, a model learns."""
from __future__ import annotations

import json

import pytest

from node_data import cfg, make_node_dataset, run
from tiered.train import NodeLoader


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "ds"
    make_node_dataset(root, n=2000, dim=16, train=600)
    return str(root)


@pytest.mark.parametrize("model", ["sage", "gcn", "gat"])
def test_out_of_core_losses_equal_in_dram(ds, model):
    """Features on the SSD tier behind a 10% Belady cache: bit-identical losses and accuracies."""
    dram = run(cfg(ds, model=model, features_on="dram"))
    ssd = run(cfg(ds, model=model, features_on="ssd", cache="belady", cache_size="10%"))
    assert dram.loader.placement.features_on == "dram" and dram.loader.placement.cache_rows == 0
    assert ssd.loader.placement.features_on == "ssd" and ssd.loader.placement.cache_rows == 200
    assert len(ssd.losses) == 20 and ssd.losses == dram.losses
    assert [r.val_acc for r in ssd.history] == [r.val_acc for r in dram.history]
    assert ssd.history[-1].hit_rate > 0 and ssd.history[-1].bytes_read > 0


def test_lru_cache_gives_the_same_losses(ds):
    ref = run(cfg(ds, features_on="dram", epochs=1))
    lru = run(cfg(ds, features_on="ssd", cache="lru", cache_size="5%", epochs=1))
    assert lru.losses == ref.losses


def test_topology_on_ssd_with_a_neighbour_cache_gives_the_same_losses(ds):
    """indices on the SSD tier, with and without a page cache of them: the same samples."""
    ref = run(cfg(ds, features_on="dram", epochs=1))
    plain = run(cfg(ds, features_on="dram", place={"indices": "ssd"}, epochs=1))
    cached = run(cfg(ds, features_on="dram", place={"indices": "ssd"}, neighbor_cache="16KiB",
                     epochs=1))
    assert plain.loader.placement.indices_on == cached.loader.placement.indices_on == "ssd"
    assert plain.loader.neighbor_cache is None and cached.loader.neighbor_cache.num_cached > 0
    assert "reserve:neighbour cache" in cached.loader.manager.usage()["dram"]["holders"]
    assert ref.losses == plain.losses == cached.losses
    assert cached.loader.sampler.fetched_positions < plain.loader.sampler.fetched_positions


def test_learns_and_writes_metrics(ds, tmp_path):
    m = tmp_path / "m.jsonl"
    tr = run(cfg(ds, epochs=6, metrics=str(m), features_on="ssd", cache_size="10%",
                 eval_fanouts=[-1, -1]))
    lines = [json.loads(s) for s in m.read_text().splitlines()]
    assert len(lines) == 6
    for key in ("epoch", "loss", "val_acc", "test_acc", "epoch_seconds", "hit_rate", "bytes_read"):
        assert key in lines[0], key
    assert set(lines[0]["seconds"]) >= {"sample", "plan", "load", "assemble", "transfer",
                                        "compute", "idle"}
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert tr.best_val > 0.5                           # 4 classes: chance is ~0.25
    assert "best val acc" in tr.summary()


def test_early_stopping(ds):
    tr = run(cfg(ds, epochs=50, patience=1, lr=0.0, eval_fanouts=[-1, -1]))   # val acc constant
    assert len(tr.history) == 2


def test_budget_too_small_says_how_much(ds):
    with pytest.raises(ValueError, match=r"DRAM budget 64.0 KiB.*at least .*one batch of up to"):
        NodeLoader(cfg(ds, dram_budget="64KiB"))


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        NodeLoader(cfg(str(tmp_path / "nope")))


def test_two_cache_levels_dram_and_pmem_give_the_same_losses(ds, tmp_path):
    """Belady over a DRAM cache and a PMem cache (a file-backed pool) above the SSD tier."""
    from tiered.tiers.pmemobj import PMemUnavailable
    ref = run(cfg(ds, features_on="dram", epochs=1))
    try:
        two = run(cfg(ds, features_on="ssd", cache_size="3%", epochs=1,
                      pmem=f"{tmp_path / 'pool.pmem'}:64MiB"))
    except PMemUnavailable as e:
        pytest.skip(f"no libpmemobj: {e}")
    assert two.loader.placement.pmem_cache_rows > 0
    assert two.history[0].tiers[two.loader.executor.level_names[0]]["rows"] > 0
    assert two.losses == ref.losses
