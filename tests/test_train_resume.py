"""Checkpoints: a run interrupted (Ctrl-C) and resumed ends exactly like one never interrupted."""
from __future__ import annotations

import pytest
import torch

from node_data import cfg, make_node_dataset, run
from tiered.train import Trainer


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


@pytest.mark.parametrize("stop_at", [7, 14, 21])   # mid-superbatch; epoch 1; an epoch end
def test_resume_equals_uninterrupted(ds, tmp_path, stop_at):
    c = dict(features_on="ssd", cache_size="10%", epochs=3, dropout=0.3)
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
