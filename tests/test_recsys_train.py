"""Link-prediction training end to end: a table on the SSD with a small DRAM cache trains to
exactly the all-in-DRAM run's table; the models learn; custom models and the CLI work."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from torch import nn

from tiered import write_array, write_group_metadata
from tiered.convert import ConvertOptions, generate_synthetic_links
from tiered.recsys import LinkTrainer, make_link_config
from tiered.train.cli import main as train_main
from tiered.recsys.spmm import spmm
from tiered.recsys.graph import block_matrix
from tiered.tiers import pmemobj

USERS, ITEMS = 500, 300


@pytest.fixture(scope="module")
def links(tmp_path_factory):
    out = tmp_path_factory.mktemp("links") / "ui"
    generate_synthetic_links(out, users=USERS, items=ITEMS, interactions=12000, groups=6, seed=3,
                             options=ConvertOptions(progress=False))
    return out


def _run(links, tmp_path, **kw):
    base = dict(dataset=str(links), layers=2, dim=16, batch_size=512, epochs=2, lr=0.01,
                superbatch=4, table_dir=str(tmp_path), progress=False, seed=5)
    base.update(kw)
    t = LinkTrainer(make_link_config(**base))
    t.fit()
    return t


@pytest.mark.parametrize("policy", ["belady", "lru"])
def test_table_on_ssd_with_small_cache_equals_all_in_dram(links, tmp_path, policy):
    ref = _run(links, tmp_path)
    ssd = _run(links, tmp_path, embeddings_on="ssd", cache=policy, cache_size="10%")
    try:
        st = ssd.history[-1].table
        assert ssd.table.capacity == (USERS + ITEMS) // 10
        assert st["hits"] > 0 and st["writebacks"] > st["flushed"] > 0   # evictions happened
        assert ssd.losses == ref.losses
        np.testing.assert_array_equal(ssd.table.table(), ref.table.table())
        on_disk = ssd.table.backing.layout.read_all()       # the chunk file itself
        np.testing.assert_array_equal(on_disk, ref.table.table())
        assert (ssd.history[-1].recall, ssd.history[-1].ndcg) == \
               (ref.history[-1].recall, ref.history[-1].ndcg)
    finally:
        ssd.close()
        ref.close()
    assert not list(tmp_path.glob("ui-table-*"))             # close() removed the table file


@pytest.mark.skipif(not pmemobj.available(), reason="libpmemobj is not installed")
def test_table_on_pmem_equals_all_in_dram(links, tmp_path):
    ref = _run(links, tmp_path, epochs=1)
    pm = _run(links, tmp_path, epochs=1, embeddings_on="pmem", cache_size="15%",
              pmem=f"{tmp_path / 'emb.pool'}:64MiB")
    try:
        assert pm.table.backing.hints.kind == "pmem" and pm.table.stats.writebacks > 0
        np.testing.assert_array_equal(pm.table.table(), ref.table.table())
    finally:
        pm.close()
        ref.close()


def test_lightgcn_learns_and_hard_negatives_run(links, tmp_path):
    t = _run(links, tmp_path, epochs=6, eval_every=3, lr=0.02)
    first, last = t.history[2], t.history[-1]
    assert first.recall is not None and t.history[0].recall is None
    assert last.loss < t.history[0].loss
    assert last.recall > 0.1, t.summary()           # planted groups: popularity gets ~0.05
    assert "recall@20" in t.summary()
    t.close()
    early = _run(links, tmp_path, epochs=6, lr=0.02, target_recall=0.01)
    assert len(early.history) == 1                      # the first evaluation reached it
    early.close()
    hard = _run(links, tmp_path, epochs=1, num_neg=4)
    assert np.isfinite(hard.history[-1].loss)
    hard.close()


def test_sage_encoder_with_sampled_neighbours(links, tmp_path):
    t = _run(links, tmp_path, model="sage", fanouts=[5, 3], epochs=3, optimizer="adagrad",
             lr=0.05, lr_decay=0.5)
    assert t.dense_optimizer is not None
    assert [h.lr for h in t.history] == [0.05, 0.025, 0.0125]
    assert t.table.optimizer.lr == t.dense_optimizer.param_groups[0]["lr"] == 0.0125
    assert t.history[-1].loss < t.history[0].loss
    assert t.history[-1].recall > 0.02
    t.close()


def test_sage_with_input_features(links, tmp_path):
    data = tmp_path / "with-features"
    shutil.copytree(links, data)
    meta = json.loads((data / "zarr.json").read_text())
    attrs = meta["attributes"]
    feats = np.random.default_rng(0).standard_normal((attrs["num_nodes"], 5)).astype(np.float32)
    write_array(data, "features", feats)
    attrs.update(feature_dim=5, feature_dtype="float32")
    write_group_metadata(data, attrs)
    t = _run(data, tmp_path, model="sage", fanouts=[4], layers=1, epochs=1, use_features=True)
    assert t.model.layers[0].neigh.in_features == 16 + 5
    assert t.history[-1].recall is not None
    t.close()
    with pytest.raises(ValueError, match="need the 'sage' encoder"):
        _run(data, tmp_path, use_features=True)
    with pytest.raises(ValueError, match="the dataset has no features"):
        _run(links, tmp_path, model="sage", use_features=True)


class DotMLP(nn.Module):
    """A custom model: one mean layer then a linear map; no full_graph (sampled inference)."""

    def __init__(self, in_dim: int, dim: int, num_layers: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, dim)
        self.num_layers = num_layers

    def forward(self, x, blocks):
        h = x
        for blk in blocks:
            h = spmm(block_matrix(blk, "mean"), h)
        return self.lin(h)


def test_custom_model_through_python_api(links, tmp_path):
    cfg = make_link_config(dataset=str(links), layers=1, dim=8, batch_size=1024, epochs=1,
                           progress=False, eval_batch_size=200)
    with LinkTrainer(cfg, model=DotMLP(8, 8, 1)) as t:
        h = t.fit()
        assert h[-1].recall is not None and 0 <= h[-1].recall <= 1
        assert t.embed_all().shape == (USERS + ITEMS, 8)


def test_bad_model_output_is_explained(links, tmp_path):
    class Wrong(nn.Module):
        def forward(self, x, blocks):
            return x.sum(1)

    cfg = make_link_config(dataset=str(links), layers=1, dim=8, epochs=1, progress=False)
    with LinkTrainer(cfg, model=Wrong()) as t:
        with pytest.raises(ValueError, match=r"one embedding per seed"):
            t.fit()


def test_config_errors(links):
    with pytest.raises(ValueError, match="fanouts must be 3 values"):
        make_link_config(dataset=str(links), fanouts=[5, 5])
    with pytest.raises(ValueError, match="embeddings_on = pmem needs --pmem"):
        make_link_config(dataset=str(links), embeddings_on="pmem")
    with pytest.raises(ValueError, match="cache_size 'lots'"):
        make_link_config(dataset=str(links), cache_size="lots")


def test_cli_trains_and_writes_metrics(links, tmp_path, capsys):
    metrics = tmp_path / "m.jsonl"
    rc = train_main([str(links), "--task", "link", "--layers", "1", "--dim", "8", "--epochs", "2",
                    "--batch-size", "1024", "--embeddings-on", "ssd", "--cache", "lru",
                    "--cache-size", "20%", "--table-dir", str(tmp_path), "--metrics", str(metrics),
                    "--no-progress"])
    assert rc == 0
    lines = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1] and lines[-1]["recall"] is not None
    assert "recall@20" in capsys.readouterr().out
    rc = train_main([str(tmp_path / "missing"), "--task=link"])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
