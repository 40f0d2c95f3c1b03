"""Checkpoints: a run interrupted (Ctrl-C) and resumed ends exactly like one never interrupted."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
import torch

from node_data import cfg, make_node_dataset, run
from tiered.plan import PolicyState
from tiered.train import NodeLoader, Trainer
from tiered.train import loader as loader_module


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume") / "ds"
    make_node_dataset(root, n=2000, dim=16, train=600)
    return str(root)


def interrupt_at(model: torch.nn.Module, at: int) -> None:
    """Raise KeyboardInterrupt (as Ctrl-C would) at the at-th training forward call."""
    calls = [0]

    def hook(module, args):
        if module.training:
            calls[0] += 1
            if calls[0] == at:
                raise KeyboardInterrupt

    model.register_forward_pre_hook(hook)


@pytest.mark.parametrize("cache", ["belady", "lru"])
@pytest.mark.parametrize("stop_at", [7, 14, 21])   # mid-superbatch; epoch 1; an epoch end
def test_resume_equals_uninterrupted(ds, tmp_path, stop_at, cache):
    c = dict(features_on="ssd", cache=cache, cache_size="10%", epochs=3, dropout=0.3)
    ref = run(cfg(ds, **c))
    ck = tmp_path / "ck"
    first = Trainer(cfg(ds, checkpoint=str(ck), **c))
    interrupt_at(first.model, stop_at)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    first.loader.close()
    assert len(first.losses) == stop_at - 1
    resumed = Trainer(cfg(ds, checkpoint=str(ck), resume=True, **c))
    epoch, nxt = resumed.epoch, resumed.next_batch
    assert (epoch + nxt // 10, nxt % 10) == divmod(stop_at - 1, 10)     # (e, 10) is (e + 1, 0)
    resumed.fit()
    resumed.loader.close()
    assert resumed.losses == ref.losses
    for (k, a), (_, b) in zip(ref.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert [r.val_acc for r in resumed.history] == [r.val_acc for r in ref.history]


def test_checkpoint_every_and_best_model(ds, tmp_path):
    ck = tmp_path / "ck"
    tr = run(cfg(ds, checkpoint=str(ck), checkpoint_every=3, epochs=2))
    assert (ck / "last.pt").is_file() and (ck / "best.pt").is_file()
    best = torch.load(ck / "best.pt", weights_only=False)
    assert best["val_acc"] == tr.best_val and best["epoch"] == tr.best_epoch


@pytest.mark.parametrize("cache", ["belady", "lru", "sieve", "static"])
def test_resumed_loader_plans_every_batch_as_the_uninterrupted_one(ds, cache, monkeypatch):
    """The policy state a checkpoint saves at batch 6 makes the resumed loader plan batches
    6.. (loads, slots, moves, evictions) exactly as the uninterrupted loader did."""
    planned: list = []

    def recording_inspect(*args, **kw):
        for sb in real_inspect(*args, **kw):
            planned.append(sb)
            yield sb

    real_inspect = loader_module.inspect
    monkeypatch.setattr(loader_module, "inspect", recording_inspect)
    c = cfg(ds, features_on="ssd", cache=cache, cache_size="10%")
    with NodeLoader(c) as ref:
        for _ in ref.epoch(0):
            pass
        saved = ref.policy_state(0, 6).to_dict()           # what save_checkpoint writes
    ref_sbs = {(sb.epoch, sb.index): sb for sb in planned}  # all 3 superbatches of the epoch
    planned.clear()
    with NodeLoader(c) as res:
        res.resume_at(0, 6, PolicyState.from_dict(saved))
        got = sum(1 for _ in res.epoch(0, start=6))
    res_sbs = {(sb.epoch, sb.index): sb for sb in planned}
    assert got == 4
    for b in range(6, 10):
        x, y = (sbs[(0, b // 4)] for sbs in (ref_sbs, res_sbs))
        px, py = x.plan.batch(b - x.first_batch), y.plan.batch(b - y.first_batch)
        for f in fields(px):
            assert np.array_equal(getattr(px, f.name), getattr(py, f.name)), (b, f.name)
