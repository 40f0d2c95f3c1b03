"""NodeLoader: a dataset directory in, batches of node-classification training out.

It places the arrays (features on DRAM or the SSD tier, a DRAM cache of the
rows that fit the budget), builds the sampler, the cache policy and the
executor, and for each epoch feeds the executor the inspector's superbatches
(sampled and planned one superbatch ahead, in a background thread). It also
records where an epoch stands (superbatch, batch, cache state) so a checkpoint
can resume it exactly.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..background import Background
from ..batch import Batch
from ..dataset import Dataset, open_dataset
from ..executor import Executor
from ..inspector import PlanStart, Superbatch, inspect
from ..manager import PlacementError, TierManager
from ..memory import available_memory
from ..plan import make_policy
from ..plan.policy import CachePolicy, PolicyState
from ..sampling import NeighborCache, NeighborSampler, page_degree_score
from ..tiers.dram import DRAMTier
from ..units import format_size
from .config import TrainConfig

_KEEP_PLANNED = 4                # superbatches kept for checkpoints (the inspector runs ahead)
_SAMPLED_BYTES_PER_ROW = 64      # sampled ids, edges and plan arrays per batch row, measured loosely


class BudgetError(ValueError):
    """The DRAM budget cannot hold one batch and the graph; the message says how much is needed."""


@dataclass
class Placement:
    """Where the arrays went (the TierManager's decision) and what one batch needs."""

    features_on: str
    indices_on: str
    cache_rows: int                 # DRAM feature cache rows (level 0)
    pmem_cache_rows: int            # PMem feature cache rows (level 1), 0 without PMem
    batch_rows: int                 # largest batch seen when probing, with margin
    batch_bytes: dict               # DRAM reserved per in-flight batch buffers
    table: str                      # the manager's placement table

    def describe(self) -> str:
        caches = f"DRAM cache {self.cache_rows} rows"
        if self.pmem_cache_rows:
            caches += f", PMem cache {self.pmem_cache_rows} rows"
        return (f"features on {self.features_on}, indices on {self.indices_on}, {caches}; "
                f"batches up to {self.batch_rows} rows reserve "
                f"{format_size(sum(self.batch_bytes.values()))}")


def probe_batch_rows(ds: Dataset, cfg: TrainConfig) -> int:
    """Largest n_id of two sampled training (and evaluation) batches, x 1.25: the rows the
    batch buffers must hold."""
    indptr = ds.load("indptr")
    lay = ds.layout("indices")
    indices = lay.read_all() if lay.nbytes <= (256 << 20) else None
    if indices is None:
        from ..tiers.ssd import SSDTier
        indices = SSDTier(lay)
    rng = np.random.default_rng(cfg.seed)
    probes = [("train", cfg.fanouts, cfg.batch_size)]
    if "val" in ds.splits:
        probes.append(("val", cfg.eval_fanouts or cfg.fanouts, cfg.eval_batch_size or
                       cfg.batch_size))
    most = 0
    try:
        for split, fanouts, bs in probes:
            ids = ds.split(split)
            seeds = [rng.permutation(ids)[:bs] for _ in range(2)]
            sb = NeighborSampler(indptr, indices, fanouts).sample(seeds, [-1, -2])
            most = max(most, int(np.diff(sb.node_ptr).max()))
    finally:
        if not isinstance(indices, np.ndarray):
            indices.close()
    return min(ds.num_nodes, int(most * 1.25) + 1)


def batch_reservations(ds: Dataset, cfg: TrainConfig, rows: int) -> dict[str, int]:
    """The DRAM a run reserves for batches of up to `rows` rows (and the neighbour cache
    when one is asked for), by holder."""
    row_bytes = ds.layout("features").row_bytes
    out = {"assembly ring": (cfg.prefetch + 2) * rows * row_bytes,
           "load staging": rows * row_bytes,
           "sampled + plan arrays": 2 * cfg.superbatch * rows * _SAMPLED_BYTES_PER_ROW}
    if cfg.neighbor_cache_bytes():
        out["neighbour cache"] = cfg.neighbor_cache_bytes()
    return out


def placement_manager(ds: Dataset, cfg: TrainConfig, rows: int) -> TierManager:
    """The TierManager a NodeLoader for `cfg` uses (overrides, cache sizes and batch
    reservations for batches of `rows` rows), not yet planned or opened; the advisor
    prices candidate placements with it."""
    n, row_bytes = ds.num_nodes, ds.layout("features").row_bytes
    budget = cfg.dram_budget_bytes() or int(available_memory() * 0.8)
    place = dict(cfg.place or {})
    if cfg.features_on != "auto":
        place["features"] = cfg.features_on
    asked = cfg.cache_rows(n, row_bytes)
    no_cache = cfg.cache == "none"
    mgr = TierManager(ds, budget, pmem=cfg.pmem, place=place,
                      dram_cache=0 if no_cache else (None if asked is None else asked * row_bytes),
                      pmem_cache=0 if no_cache or cfg.cache != "belady" else None)
    for name, nbytes in batch_reservations(ds, cfg, rows).items():
        mgr.reserve(name, nbytes)
    return mgr


class NodeLoader:
    """Batches of one split of a node-classification dataset, through the tiers.

    Usage::

        with NodeLoader(cfg) as loader:
            for batch in loader.epoch(0):          # Batch: x, y, blocks, adjs, ...
                ...

    `epoch(e, split="train")` shuffles with (seed, e); "val"/"test" read in order,
    the same samples every epoch, without touching the training cache. A batch's
    tensors are views of the executor's buffers: valid until the next batch is requested.
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        path = Path(cfg.dataset)
        if not path.exists():
            raise FileNotFoundError(f"dataset {path}: no such directory (convert one with "
                                    f"tiered-convert, e.g. `tiered-convert planetoid IN {path}`)")
        self.ds: Dataset = open_dataset(path)
        if self.ds.task != "node":
            raise ValueError(f"{path}: task is {self.ds.task!r}; NodeLoader trains node "
                             f"classification")
        if not self.ds.feature_dim:
            raise ValueError(f"{path}: dataset has no features (feature_dim = 0)")
        if "train" not in self.ds.splits:
            raise ValueError(f"{path}: dataset has no 'train' split (has {self.ds.splits})")
        self.num_nodes = self.ds.num_nodes
        self.row_bytes = self.ds.layout("features").row_bytes
        self.manager = self._manager()
        try:
            self._open()
        except BaseException:
            self.manager.close()
            raise
        self._planned: dict[tuple[int, int], PlanStart] = {}
        self._resume: tuple[tuple[int, int], PolicyState] | None = None

    # ---- placement ---------------------------------------------------------------------
    def _manager(self) -> TierManager:
        """Ask the TierManager for a placement with this run's batch buffers reserved."""
        rows = probe_batch_rows(self.ds, self.cfg)
        self._batch_rows = rows
        self._batch_bytes = batch_reservations(self.ds, self.cfg, rows)
        mgr = placement_manager(self.ds, self.cfg, rows)
        try:
            mgr.plan()
        except PlacementError as e:
            per = ", ".join(f"{k} {format_size(v)}" for k, v in self._batch_bytes.items())
            raise BudgetError(f"{e} (one batch of up to {rows} rows reserves: {per})") from None
        return mgr

    def _open(self) -> None:
        cfg, mgr = self.cfg, self.manager
        p = mgr.plan()
        tiers = mgr.open()
        self.labels = tiers["labels"].array
        self.indptr = tiers["indptr"].array
        self.splits = {s: tiers[f"{s}_idx"].array.astype(np.int64, copy=False)
                       for s in self.ds.splits}
        indices = tiers["indices"]
        self.neighbor_cache = None
        if cfg.neighbor_cache_bytes() and not isinstance(indices, DRAMTier):
            fanout = max(f if f > 0 else 1 << 30 for f in cfg.fanouts)
            self.neighbor_cache = NeighborCache.build(
                indices, cfg.neighbor_cache_bytes(), page_degree_score(self.indptr, indices, fanout))
        self.sampler = NeighborSampler(self.indptr, indices, cfg.fanouts, seed=cfg.seed,
                                       neighbor_cache=self.neighbor_cache)
        eval_f = cfg.eval_fanouts or cfg.fanouts
        self.eval_sampler = (self.sampler if eval_f == cfg.fanouts else
                             NeighborSampler(self.indptr, indices, eval_f, seed=cfg.seed,
                                             neighbor_cache=self.neighbor_cache))
        self.features = tiers["features"]
        caps = [p.dram_cache_rows] + ([p.pmem_cache_rows] if p.pmem_cache_rows else [])
        policy_name = cfg.cache if sum(caps) else "none"
        score = np.diff(self.indptr) if policy_name == "static" else None
        self.policy: CachePolicy = make_policy(policy_name, caps if len(caps) > 1 else caps[0],
                                               self.num_nodes, score)
        dram_cache = mgr.cache_tier("dram")
        pmem_cache = mgr.cache_tier("pmem")
        self.executor = Executor(
            self.features, p.dram_cache_rows, self.labels, indptr=self.indptr,
            cache_tiers=[pmem_cache] if pmem_cache is not None else [],
            slab=dram_cache.array if isinstance(dram_cache, DRAMTier) else None,
            device=cfg.device, transfer=cfg.transfer, prefetch=cfg.prefetch)
        self.placement = Placement(p.tiers["features"], p.tiers["indices"], p.dram_cache_rows,
                                   p.pmem_cache_rows, self._batch_rows, self._batch_bytes,
                                   p.describe())

    # ---- epochs ------------------------------------------------------------------------
    def num_batches(self, split: str = "train") -> int:
        return -(-len(self.splits[split]) // self._batch_size(split))

    def _batch_size(self, split: str) -> int:
        return self.cfg.batch_size if split == "train" else (self.cfg.eval_batch_size or
                                                             self.cfg.batch_size)

    def seed_batches(self, epoch: int, split: str = "train") -> list[np.ndarray]:
        """The seed nodes of every batch of an epoch (train: shuffled by (seed, epoch))."""
        ids = self.splits[split]
        if split == "train":
            ids = ids[np.random.default_rng([self.cfg.seed, epoch]).permutation(len(ids))]
        bs = self._batch_size(split)
        return [ids[i:i + bs] for i in range(0, len(ids), bs)]

    def epoch(self, epoch: int, split: str = "train", start: int = 0) -> Iterator[Batch]:
        """Batches of one epoch of `split`, from batch `start` (resuming: see `resume_at`)."""
        if split not in self.splits:
            raise ValueError(f"{self.ds.path}: no {split!r} split (has {list(self.splits)})")
        if split == "train" and self._resume is not None:
            at, state = self._resume
            if at != (epoch, start):
                raise ValueError(f"resume point is epoch {at[0]} batch {at[1]}, but epoch "
                                 f"{epoch} batch {start} was asked for")
            self._resume = None
            self.policy.restore(state)
            self.executor.restore(state.cache)
        elif start:
            raise ValueError("starting mid-epoch needs resume_at() first (the cache state)")
        return self._run(epoch, split, start)

    def _run(self, epoch: int, split: str, start: int) -> Iterator[Batch]:
        train = split == "train"
        # evaluation draws the same samples every epoch, from its own streams
        key_epoch = epoch if train else -1 - list(self.splits).index(split)
        sampler = self.sampler if train else self.eval_sampler
        policy = self.policy if train else make_policy("none", 0, self.num_nodes)
        gen = inspect(sampler, policy, self.seed_batches(epoch, split), self.cfg.superbatch,
                      key_epoch, first_batch=start)
        if train:
            gen = _recording(gen, epoch, self._planned)
        ahead = Background(gen, 1, "tiered-inspector")
        yield from self.executor.run(ahead, first_index=start)

    def policy_state(self, epoch: int, next_batch: int) -> PolicyState:
        """The training cache policy's state before batch `next_batch` of `epoch` (what a
        checkpoint taken there records; `next_batch` may be the epoch's batch count)."""
        for (e, _), start in reversed(self._planned.items()):
            if e == epoch and start.first_batch <= next_batch <= start.first_batch + len(start):
                return start.state_at(self.policy, next_batch)
        raise LookupError(f"epoch {epoch} batch {next_batch} is not in a recently planned "
                          f"superbatch")

    def resume_at(self, epoch: int, start: int, state: PolicyState) -> None:
        """Make the next `epoch(epoch, start=start)` begin from the policy state `state`
        (the one `policy_state(epoch, start)` gave in the interrupted run)."""
        self._resume = ((epoch, start), state)

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> "NodeLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _recording(superbatches: Iterator[Superbatch], epoch: int,
               planned: dict[tuple[int, int], PlanStart]) -> Iterator[Superbatch]:
    """The superbatches, keeping the PlanStart of the last few in `planned` (a checkpoint
    takes the policy's state from them; the inspector runs ahead of training)."""
    with contextlib.closing(superbatches):
        for sb in superbatches:
            planned[(epoch, sb.index)] = sb.start()
            while len(planned) > _KEEP_PLANNED:
                del planned[next(iter(planned))]
            yield sb
