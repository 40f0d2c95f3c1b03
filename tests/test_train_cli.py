"""tiered-train: config files, flags over files, and the errors people meet first."""
from __future__ import annotations

import json

import pytest
import torch

from node_data import make_node_dataset
from tiered.train import Trainer, make_config
from tiered.train.cli import main


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "ds"
    make_node_dataset(root, n=800, dim=8, train=200)
    return str(root)


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--config", "--model", "--fanouts", "--batch-size", "--epochs", "--lr",
                 "--hidden", "--dram-budget", "--pmem", "--cache", "--superbatch", "--device",
                 "--seed", "--checkpoint", "--resume", "--metrics"):
        assert flag in out, flag


def test_flags_override_yaml_and_toml(tmp_path, ds):
    (tmp_path / "c.yaml").write_text("model: gcn\nfanouts: [4, 3]\nepochs: 7\ncache-size: 10%\n")
    (tmp_path / "c.toml").write_text('model = "gat"\nfanouts = "4,3"\nepochs = 7\n')
    for name in ("c.yaml", "c.toml"):
        cfg = make_config(tmp_path / name, dataset=ds, epochs=2)
        assert cfg.fanouts == [4, 3] and cfg.epochs == 2 and cfg.model in ("gcn", "gat")
    (tmp_path / "bad.yaml").write_text("epochz: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown setting\(s\) \['epochz'\]"):
        make_config(tmp_path / "bad.yaml", dataset=ds)


def test_cli_trains_and_writes_metrics(tmp_path, ds, capsys):
    m = tmp_path / "m.jsonl"
    rc = main([ds, "--epochs", "2", "--fanouts", "-1,3", "--batch-size", "64", "--features-on",
               "ssd", "--cache-size", "10%", "--dram-budget", "256MiB", "--metrics", str(m),
               "--no-progress"])
    assert rc == 0
    assert len(m.read_text().splitlines()) == 2
    out = capsys.readouterr().out
    assert "test acc" in out and "memory by tier" in out
    first = json.loads(m.read_text().splitlines()[0])
    assert first["bytes_read"] > 0
    assert 0 < first["peak_bytes"]["dram"] <= 256 << 20 and first["peak_bytes"]["ssd"] > 0


def test_place_overrides_one_array_from_the_command_line(tmp_path, ds, capsys):
    (tmp_path / "p.yaml").write_text("place: {indices: ssd}\n")
    for extra in (["--place", "indices=ssd"], ["--config", str(tmp_path / "p.yaml")]):
        assert main([ds, "--epochs", "1", "--no-progress", *extra]) == 0
        assert "indices on ssd" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contradicts"):
        make_config(dataset=ds, features_on="dram", place="features=ssd")
    with pytest.raises(ValueError, match="tiers are dram, pmem or ssd"):
        make_config(dataset=ds, place={"indices": "tape"})
    assert main([ds, "--place", "nope=ssd", "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err


def test_cli_errors_name_what_is_wrong(tmp_path, ds, capsys):
    assert main([str(tmp_path / "missing"), "--no-progress"]) == 2
    assert f"{tmp_path / 'missing'}: no such directory" in capsys.readouterr().err
    assert main([ds, "--dram-budget", "32KiB", "--no-progress"]) == 2
    assert "give --dram-budget of at least" in capsys.readouterr().err
    assert main([ds, "--model", "torch.nn:Identity", "--no-progress"]) == 2
    assert "tiered calls forward(x, blocks)" in capsys.readouterr().err


class OneArg(torch.nn.Module):
    def __init__(self, in_dim, hidden, out_dim, num_layers):
        super().__init__()
        self.lin = torch.nn.Linear(in_dim, out_dim)

    def forward(self, x):
        return self.lin(x)


class WrongShape(OneArg):
    def forward(self, x, blocks):
        return self.lin(x)                      # every input row, not the seeds


class PygStyle(OneArg):
    def forward(self, x, adjs):
        for edge_index, _, size in adjs:
            x = x[: size[1]]
        return self.lin(x)


def test_model_that_does_not_fit_shows_the_signature(ds):
    cfg = make_config(dataset=ds, fanouts=[3, 3], batch_size=64, epochs=1, progress=False)
    for cls, msg in ((OneArg, "takes 1 positional"), (WrongShape, r"returned \(\d+, 4\)")):
        with pytest.raises(TypeError, match=msg) as e:
            Trainer(cfg, model=cls(8, 0, 4, 2)).fit()
        assert "forward(x, blocks)" in str(e.value) and "adjs" in str(e.value)
    tr = Trainer(cfg, model=PygStyle(8, 0, 4, 2))
    assert tr.style == "pyg"
    tr.fit()
    tr.loader.close()
