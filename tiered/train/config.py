"""Training settings: one dataclass, read from a YAML or TOML file and overridden by flags.

Every field has a default; a config file sets any subset (unknown keys are an
error naming the file); command-line flags override the file. Sizes accept
units ("2GiB"); `cache_size` is a row count, a share of the rows ("10%") or bytes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..settings import fanout_list, read_settings, size_in_rows
from ..units import parse_size

MODELS = ("sage", "gcn", "gat")
CACHE_POLICIES = ("belady", "lru", "sieve", "static", "none")
FEATURE_TIERS = ("auto", "dram", "ssd", "pmem")


@dataclass
class TrainConfig:
    """Everything a training run needs; see docs/training.md for each field."""

    dataset: str = ""
    model: str = "sage"                 # sage | gcn | gat | package.module:Class
    fanouts: list[int] = field(default_factory=lambda: [10, 10])   # hop 1 (next to seeds) first
    batch_size: int = 1024
    epochs: int = 10
    lr: float = 0.003
    weight_decay: float = 0.0
    hidden: int = 128
    dropout: float = 0.5
    heads: int = 4                      # GAT attention heads
    normalize_features: bool = False    # divide each input row by its L1 norm (Planetoid practice)
    dram_budget: str | None = None      # None: the machine's available memory
    pmem: str | None = None             # PATH:SIZE of a persistent-memory pool
    features_on: str = "auto"           # tier of the feature array: auto | dram | ssd | pmem
    place: dict[str, str] | None = None  # per-array tier overrides, e.g. {"indices": "ssd"}
    cache: str = "belady"
    cache_size: str | None = None       # rows, "10%" of rows, or bytes ("64MiB"); None: what the budget leaves
    superbatch: int = 32                # batches sampled and planned together
    neighbor_cache: str | None = None   # DRAM bytes of indices pages cached when indices are on SSD/PMem
    prefetch: int = 2                   # assembled batches queued ahead of the model
    device: str = "cpu"
    transfer: str = "copy"              # CUDA hand-off: copy | zero-copy
    seed: int = 0
    eval_fanouts: list[int] | None = None   # None: same as fanouts; -1 entries: all neighbours
    eval_batch_size: int | None = None
    eval_every: int = 1
    patience: int | None = None         # early stopping: epochs without a better val_acc
    checkpoint: str | None = None       # directory
    checkpoint_every: int = 0           # batches between mid-epoch checkpoints (0: epoch ends only)
    resume: bool = False
    metrics: str | None = None          # JSON-lines file, one object per epoch
    progress: bool = True

    def validate(self) -> "TrainConfig":
        """Check values and normalise types; raises ValueError naming the field."""
        if not self.dataset:
            raise ValueError("no dataset given: pass DATASET (a directory written by tiered-convert)")
        self.fanouts = fanout_list(self.fanouts, "fanouts")
        if self.eval_fanouts is not None:
            self.eval_fanouts = fanout_list(self.eval_fanouts, "eval_fanouts")
            if len(self.eval_fanouts) != len(self.fanouts):
                raise ValueError(f"eval_fanouts has {len(self.eval_fanouts)} hops, fanouts "
                                 f"{len(self.fanouts)}: the model's depth is fixed")
        for name in ("batch_size", "epochs", "hidden", "heads", "superbatch", "prefetch",
                     "eval_every"):
            if int(getattr(self, name)) < (0 if name == "epochs" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.cache not in CACHE_POLICIES:
            raise ValueError(f"cache must be one of {CACHE_POLICIES}, got {self.cache!r}")
        if self.features_on not in FEATURE_TIERS:
            raise ValueError(f"features_on must be one of {FEATURE_TIERS}, got {self.features_on!r}")
        self.place = place_overrides(self.place)
        if self.features_on != "auto" and self.place.get("features", self.features_on) != self.features_on:
            raise ValueError(f"features_on = {self.features_on} contradicts place features = "
                             f"{self.place['features']}")
        if self.transfer not in ("copy", "zero-copy"):
            raise ValueError(f"transfer must be copy or zero-copy, got {self.transfer!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be cpu or cuda[:N], got {self.device!r}")
        for name in ("dram_budget", "neighbor_cache"):
            if getattr(self, name) is not None:
                parse_size(getattr(self, name))
        if self.resume and not self.checkpoint:
            raise ValueError("--resume needs --checkpoint DIR")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def neighbor_cache_bytes(self) -> int:
        return 0 if self.neighbor_cache is None else parse_size(self.neighbor_cache)

    def dram_budget_bytes(self) -> int | None:
        return None if self.dram_budget is None else parse_size(self.dram_budget)

    def cache_rows(self, num_rows: int, row_bytes: int) -> int | None:
        """cache_size as a number of rows (None: let the budget decide)."""
        return None if self.cache_size is None else size_in_rows(self.cache_size, num_rows, row_bytes)


def place_overrides(v: str | dict | None) -> dict[str, str]:
    """"indices=ssd,features=pmem" or {"indices": "ssd"} as a dict of array -> tier."""
    if v is None:
        return {}
    if isinstance(v, str):
        try:
            v = dict(p.split("=", 1) for p in v.replace(" ", "").split(",") if p)
        except ValueError:
            raise ValueError(f"place must be NAME=TIER[,NAME=TIER...], got {v!r}") from None
    if not isinstance(v, dict):
        raise ValueError(f"place must map array names to tiers, got {v!r}")
    out = {str(k): str(t) for k, t in v.items()}
    bad = {k: t for k, t in out.items() if t not in ("dram", "pmem", "ssd")}
    if bad:
        raise ValueError(f"place {bad}: tiers are dram, pmem or ssd")
    return out


def read_config_file(path: str | Path) -> dict:
    """Settings from a .yaml/.yml/.toml/.json file, checked against TrainConfig's fields."""
    return read_settings(path, {f.name for f in fields(TrainConfig)})


def make_config(file: str | Path | None = None, **overrides) -> TrainConfig:
    """TrainConfig from defaults < config file < overrides (None values do not override)."""
    data = read_config_file(file) if file else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**data).validate()
