"""Settings of a link-prediction run: one dataclass, from a YAML/TOML/JSON file and flags.

Defaults are LightGCN's published Gowalla setting (3 layers, dim 64, BPR with
one uniform negative, L2 1e-4, Adam) except the batch size and learning rate:
32768 interactions at lr 0.02 reached recall@20 0.16 on Gowalla in the least
training time of the sizes measured (docs/recommenders.md). With every
neighbour sampled, a 3-layer batch touches the whole Gowalla graph whatever its
size, so a batch costs about the same at 2048 or 32768 interactions and large
batches with a proportionally larger learning rate win per second.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..plan import POLICIES
from ..settings import fanout_list, read_settings, size_in_rows
from .models import MAX_LAYERS
from .optim import ROW_OPTIMIZERS
from .storage import TABLE_TIERS


@dataclass
class LinkConfig:
    """Everything a link-prediction run needs (see docs/recommenders.md for each field)."""

    dataset: str = ""
    model: str = "lightgcn"             # lightgcn | sage | package.module:Class
    layers: int = 3
    dim: int = 64
    fanouts: list[int] | None = None    # None: every neighbour at every hop (exact LightGCN)
    batch_size: int = 32768             # positive interactions per batch
    epochs: int = 100
    lr: float = 0.02
    lr_decay: float = 1.0               # learning rate of epoch e = lr * lr_decay ** e
    optimizer: str = "adam"             # row optimizer of the table: adam (SparseAdam) | adagrad
    reg: float = 1e-4                   # L2 on the batch's layer-0 embeddings (LightGCN's decay)
    num_neg: int = 1                    # negative candidates per positive; > 1: hard negatives
    init_std: float = 0.1
    use_features: bool = False          # concatenate the dataset's features to the embeddings
    embeddings_on: str = "dram"         # tier of the table: dram | ssd | pmem
    table_dir: str | None = None        # where the SSD table file goes (default: beside the dataset)
    pmem: str | None = None             # PATH:SIZE of the pool for embeddings_on = pmem
    cache: str = "belady"               # DRAM cache policy of the table rows
    cache_size: str = "25%"             # rows, a share of the rows, or bytes
    superbatch: int = 8                 # batches sampled and planned together
    seed: int = 0
    eval_every: int = 1
    topk: int = 20
    eval_batch_size: int = 4096         # seeds per batch of sampled inference (custom models)
    max_scores: int = 1 << 25           # user x item scores held at once when ranking
    time_limit: float | None = None     # stop after the epoch that passes this many training seconds
    target_recall: float | None = None  # stop after the first evaluation reaching this recall@K
    metrics: str | None = None          # JSON lines, one per epoch
    progress: bool = True

    def validate(self) -> "LinkConfig":
        """Check and normalise; raises ValueError naming the field."""
        if not self.dataset:
            raise ValueError("no dataset given: pass DATASET (a link dataset written by "
                             "tiered-convert lightgcn or synthetic-link)")
        if not 1 <= int(self.layers) <= MAX_LAYERS:
            raise ValueError(f"layers must be 1..{MAX_LAYERS}, got {self.layers}")
        if self.fanouts is not None:
            self.fanouts = fanout_list(self.fanouts, "fanouts")
            if len(self.fanouts) != int(self.layers):
                raise ValueError(f"fanouts must be {self.layers} values (one per layer), each "
                                 f"positive or -1 (all neighbours); got {self.fanouts}")
        for name in ("layers", "dim", "batch_size", "num_neg", "superbatch", "eval_every", "topk",
                     "eval_batch_size", "max_scores"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.epochs) < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not self.lr > 0 or self.reg < 0 or not self.init_std > 0 or not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr and init_std must be positive, reg >= 0 and lr_decay in (0, 1]; "
                             f"got lr={self.lr}, init_std={self.init_std}, reg={self.reg}, "
                             f"lr_decay={self.lr_decay}")
        if self.optimizer not in ROW_OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(ROW_OPTIMIZERS)}, got {self.optimizer!r}")
        if self.embeddings_on not in TABLE_TIERS:
            raise ValueError(f"embeddings_on must be one of {TABLE_TIERS}, got {self.embeddings_on!r}")
        if self.embeddings_on == "pmem" and not self.pmem:
            raise ValueError("embeddings_on = pmem needs --pmem PATH:SIZE")
        if self.cache not in POLICIES:
            raise ValueError(f"cache must be one of {POLICIES}, got {self.cache!r}")
        self.cache_rows(1, 1)
        return self

    def cache_rows(self, num_rows: int, row_bytes: int) -> int:
        """cache_size as rows of a table of num_rows rows of row_bytes each (at most all)."""
        return max(0, min(num_rows, size_in_rows(self.cache_size, num_rows, row_bytes)))

    def to_dict(self) -> dict:
        return asdict(self)


def read_link_config(path: str | Path) -> dict:
    """Settings from a .yaml/.yml/.toml/.json file, checked against LinkConfig's fields."""
    return read_settings(path, {f.name for f in fields(LinkConfig)}, ignore=("task",))


def make_link_config(file: str | Path | None = None, **overrides) -> LinkConfig:
    """LinkConfig from defaults < config file < overrides (None values do not override)."""
    data = read_link_config(file) if file else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return LinkConfig(**data).validate()
