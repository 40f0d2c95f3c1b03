"""Tier manager: decides where every array lives (DRAM, PMem, SSD) and accounts every DRAM byte.

Placement rule (docs/tiers.md, "Placement"): the engine's own DRAM reservations
come first; then arrays are placed greedily, hottest class first and, within a
class, smallest first, each in the fastest tier with room left (DRAM, then the
PMem pool, then the SSD, where dataset arrays already are). The classes, in order:

  0  labels and split ids   read for every seed; a few bytes per node
  1  indptr                 two reads per sampled node; an 8-byte read costs a page on SSD
  2  learnable embeddings   read and written every step, no cache covers them
     and optimizer state
  3  indices, other arrays  one adjacency list per sampled node; the neighbour cache helps
  4  features               read-only and covered by the feature caches, so lowest

Classes 0-1 never go to the SSD, class 2 only when an SSD directory (`ssd_dir`) is
given for its files. Every SSD tier's read buffers count against the DRAM budget.
What is left becomes the feature caches when the features are not in DRAM: a PMem
cache (features on SSD), whose DRAM bookkeeping may use at most half of the DRAM
left, then a DRAM cache with the rest. Per-array overrides (`place=`) and fixed
cache sizes are honoured before the automatic rule. A placement that cannot fit
raises PlacementError, before anything is loaded, saying how much is needed.
"""
from __future__ import annotations

import os
import resource
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from .dataset import Dataset, open_dataset
from .format import ArrayLayout, ArrayWriter
from .tiers.base import Tier
from .tiers.dram import DRAMTier
from .tiers.pmem import (DEFAULT_CHUNK_BYTES, DEFAULT_TX_BYTES, ArrayGeometry, array_pool_bytes,
                         device_size, layout_source_key, pool_capacity, pool_size_for, source_key,
                         tx_headroom)
from .units import format_size, parse_size

TIERS = ("dram", "pmem", "ssd")
LEARNABLE_ROLES = ("embedding", "optimizer")
FEATURE_CACHE = "feature_cache"           # the PMem cache's array name in the pool
SSD_IO = "ssd I/O buffers"                 # DRAM holder: the SSD tiers' aligned read buffers
SSD_QUEUE_DEPTH = 64                       # the manager's SSD tiers: reads in flight ...
SSD_MAX_RUN_BYTES = 128 << 10              # ... of at most this many bytes each
_PAGE = 4096
_RANK = {"labels": 0, "split": 0, "indptr": 1, "embedding": 2, "optimizer": 2,
         "indices": 3, "other": 3, "features": 4}
_MEMORY_ONLY = ("labels", "split", "indptr", "embedding", "optimizer")
_INIT_BLOCK_BYTES = 64 << 20

Init = float | np.ndarray | Callable[[int, int], np.ndarray]


class PlacementError(ValueError):
    """The arrays and reservations cannot fit the budgets; says how much would."""


class BudgetError(ValueError):
    """A DRAM reservation made while running would exceed the budget."""


@dataclass(frozen=True)
class ArraySpec(ArrayGeometry):
    """An array the manager places: from the dataset (`layout`) or learnable (`init`)."""

    role: str
    layout: ArrayLayout | None = None
    init: Init | None = None

    @property
    def learnable(self) -> bool:
        return self.role in LEARNABLE_ROLES


@dataclass(frozen=True)
class Placement:
    """Where everything goes, and what each tier holds (bytes by holder)."""

    tiers: dict[str, str]                 # array -> "dram" | "pmem" | "ssd"
    dram_cache_rows: int                  # feature rows the DRAM cache holds
    pmem_cache_rows: int                  # feature rows the PMem cache holds
    dram: dict[str, int]                  # holder -> DRAM bytes (arrays, caches, reservations)
    pmem: dict[str, int]                  # holder -> pool bytes
    ssd: dict[str, int]                   # array -> bytes read from the dataset's files
    dram_budget: int
    pmem_capacity: int                    # usable pool bytes (0: no PMem)
    notes: tuple[str, ...] = ()

    @property
    def cache_rows(self) -> dict[str, int]:
        """Capacities of the feature caches, in rows, for the inspector's multi-tier plan."""
        return {"dram": self.dram_cache_rows, "pmem": self.pmem_cache_rows}

    def on(self, tier: str) -> list[str]:
        """Arrays placed on `tier`."""
        return [name for name, t in self.tiers.items() if t == tier]

    def describe(self) -> str:
        """A table: tier, capacity, what it holds."""
        lines = [f"{'tier':5} {'used':>10} {'of':>10}  holders"]
        for tier, holders, cap in (("dram", self.dram, self.dram_budget),
                                   ("pmem", self.pmem, self.pmem_capacity),
                                   ("ssd", self.ssd, 0)):
            used = sum(holders.values())
            what = ", ".join(f"{k} {format_size(v)}" for k, v in holders.items()) or "-"
            lines.append(f"{tier:5} {format_size(used):>10} {format_size(cap) if cap else '-':>10}"
                         f"  {what}")
        lines.append(f"feature caches: DRAM {self.dram_cache_rows} rows, "
                     f"PMem {self.pmem_cache_rows} rows")
        lines.extend(self.notes)
        return "\n".join(lines)


def parse_pmem_spec(spec: str | tuple | None) -> tuple[Path, int] | None:
    """"PATH:SIZE" (as on the command line) or (path, size) -> (Path, bytes)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        path, sep, size = spec.rpartition(":")
        if not sep or not path:
            raise ValueError(f"--pmem {spec!r}: expected PATH:SIZE, "
                             "e.g. /mnt/pmem0/tiered.pool:64GiB")
        return Path(path), parse_size(size)
    path, size = spec
    return Path(path), parse_size(size)


def dataset_role(name: str) -> str:
    """The placement class of a dataset array, from its name."""
    if name in ("indptr", "indices", "features", "labels"):
        return name
    if name.endswith("_idx") or name.endswith("_interactions"):
        return "split"
    return "other"


@dataclass
class _Ledger:
    """Free bytes per tier while placing, and who holds what."""

    free: dict[str, int]
    holders: dict[str, dict[str, int]] = field(default_factory=lambda: {t: {} for t in TIERS})

    def take(self, tier: str, holder: str, nbytes: int) -> None:
        self.free[tier] -= nbytes
        self.holders[tier][holder] = self.holders[tier].get(holder, 0) + nbytes

    def copy(self) -> "_Ledger":
        return _Ledger(dict(self.free), {t: dict(h) for t, h in self.holders.items()})


class TierManager:
    """Places a dataset's arrays, learnable arrays and feature caches on DRAM, PMem and SSD.

    Typical use::

        mgr = TierManager("data/papers", dram_budget="32GiB", pmem="/mnt/pmem0/t.pool:256GiB")
        mgr.add_learnable("emb", (n, 64), init=lambda a, b: rng.normal(0, .01, (b - a, 64)))
        mgr.reserve("plan", plan_bytes)               # every DRAM structure, before open()
        print(mgr.plan().describe())                  # PlacementError here if it cannot fit
        tiers = mgr.open()                            # name -> Tier; caches: mgr.cache_tier()
        ...
        print(mgr.report())                           # peak use per tier
        mgr.close()

    `place` overrides the tier of named arrays ({"indices": "ssd"}); `dram_cache`
    and `pmem_cache` fix the feature caches' sizes (bytes of rows; 0 disables).
    `ssd_dir` is where learnable arrays placed on the SSD are written (without it
    they live in DRAM or PMem only); dataset arrays on the SSD are read in place.
    `cache_slot_bytes` and `cache_map_bytes_per_node` are the DRAM bookkeeping a
    cache policy keeps per slot and per node (defaults: the Belady/LRU policies').
    """

    def __init__(self, dataset: Dataset | str | os.PathLike, dram_budget: int | str,
                 pmem: str | tuple | None = None, *, place: Mapping[str, str] | None = None,
                 dram_cache: int | str | None = None, pmem_cache: int | str | None = None,
                 pmem_chunk_bytes: int = DEFAULT_CHUNK_BYTES, tx_bytes: int = DEFAULT_TX_BYTES,
                 cache_slot_bytes: int = 40, cache_map_bytes_per_node: int = 4,
                 ssd_dir: str | os.PathLike | None = None, ssd_options: Mapping | None = None):
        self.dataset = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
        self.dram_budget = parse_size(dram_budget)
        self.pmem = parse_pmem_spec(pmem)
        self.overrides = dict(place or {})
        self.dram_cache = None if dram_cache is None else parse_size(dram_cache)
        self.pmem_cache = None if pmem_cache is None else parse_size(pmem_cache)
        self.pmem_chunk_bytes = int(pmem_chunk_bytes)
        self.tx_bytes = int(tx_bytes)
        self.cache_slot_bytes = int(cache_slot_bytes)
        self.cache_map_bytes_per_node = int(cache_map_bytes_per_node)
        self.ssd_dir = None if ssd_dir is None else Path(ssd_dir)
        self.ssd_options = {"queue_depth": SSD_QUEUE_DEPTH, "max_run_bytes": SSD_MAX_RUN_BYTES,
                            **(ssd_options or {})}
        self.specs: dict[str, ArraySpec] = {
            name: ArraySpec(name, lay.shape, lay.dtype, dataset_role(name), layout=lay)
            for name, lay in self.dataset.layouts.items()}
        self._reserved: dict[str, int] = {}
        self._lock = threading.RLock()
        self._placement: Placement | None = None
        self._tiers: dict[str, Tier] = {}
        self._caches: dict[str, Tier] = {}
        self._pool = None
        self._opened = False
        self._peak = {t: 0 for t in TIERS}
        self._open_notes: list[str] = []
        for name, tier in self.overrides.items():
            if tier not in TIERS:
                raise ValueError(f"place[{name!r}] = {tier!r}: expected one of {TIERS}")

    # ---- declaring ----------------------------------------------------------------------
    def add_learnable(self, name: str, shape, dtype=np.float32, *, role: str = "embedding",
                      init: Init = 0.0) -> None:
        """Declare a learnable array (role "embedding" or "optimizer"), initialised by `init`:
        a scalar, a full array, or f(start, stop) -> rows. On PMem an array with the same
        name, shape and dtype left by an earlier run is kept (training resumes from it)."""
        if role not in LEARNABLE_ROLES:
            raise ValueError(f"learnable {name!r}: role {role!r} not one of {LEARNABLE_ROLES}")
        if name in self.specs:
            raise ValueError(f"array {name!r} is already declared (dataset {self.dataset.path})")
        self._check_unopened("add_learnable")
        shape = tuple(int(s) for s in shape)
        self.specs[name] = ArraySpec(name, shape, np.dtype(dtype), role, init=init)
        self._placement = None

    def reserve(self, name: str, nbytes: int | str) -> None:
        """Count `nbytes` of DRAM held by `name` (plan, queues, neighbour cache, staging...).

        Before open() reservations shape the placement (less room for caches); afterwards a
        reservation that would exceed the budget raises BudgetError instead of risking an
        out-of-memory kill. Reserving a name again replaces its amount."""
        nbytes = parse_size(nbytes)
        with self._lock:
            if self._opened:
                used = self._dram_used() - self._reserved.get(name, 0) + nbytes
                if used > self.dram_budget:
                    raise BudgetError(
                        f"DRAM budget exceeded: {name!r} asks {format_size(nbytes)} while the "
                        f"engine holds {format_size(self._dram_used())} of the "
                        f"{format_size(self.dram_budget)} budget ({self._holders_text()}); give "
                        f"--dram-budget of at least "
                        f"{format_size(used, ceil=True)}, or reserve it before open() so the "
                        f"caches shrink")
            self._reserved[name] = nbytes
            if self._opened:
                self._note_peak()
            else:
                self._placement = None

    def release(self, name: str) -> None:
        """Give back a reservation."""
        with self._lock:
            self._reserved.pop(name, None)
            if not self._opened:
                self._placement = None

    # ---- placing ------------------------------------------------------------------------
    def plan(self) -> Placement:
        """Decide the placement (no I/O but a stat of the pool file); PlacementError if it
        cannot fit."""
        with self._lock:
            if self._placement is None:
                self._placement = self._decide()
            return self._placement

    @property
    def cache_rows(self) -> dict[str, int]:
        """Feature-cache capacities in rows: {"dram": ..., "pmem": ...}."""
        return self.plan().cache_rows

    def _pmem_capacity(self) -> tuple[int, list[str]]:
        if self.pmem is None:
            return 0, []
        path, size = self.pmem
        notes = []
        if path.exists() and device_size(path) > 0:
            have = device_size(path)
            if have != size:
                notes.append(f"note: {path} exists with {format_size(have)}; its size counts, "
                             f"not the {format_size(size)} asked")
            size = have
        return pool_capacity(size, self.pmem_chunk_bytes), notes

    def _pool_cost(self, spec: ArraySpec) -> int:
        return array_pool_bytes(spec.shape[0], spec.row_bytes, self.pmem_chunk_bytes)

    def _decide(self) -> Placement:
        capacity, notes = self._pmem_capacity()
        reserved = sum(self._reserved.values())
        if reserved > self.dram_budget:
            raise PlacementError(
                f"DRAM budget {format_size(self.dram_budget)} is smaller than the engine's "
                f"reservations, {format_size(reserved)} ({self._reserved_text()}); give "
                f"--dram-budget of at least "
                f"{format_size(reserved + self._memory_only_bytes(), ceil=True)}")
        pmem_room = max(0, capacity - tx_headroom(self.tx_bytes)) if self.pmem else 0
        base = _Ledger({"dram": self.dram_budget, "pmem": pmem_room, "ssd": 1 << 62})
        for name, nbytes in self._reserved.items():
            base.take("dram", f"reserve:{name}", nbytes)
        fixed_tiers: dict[str, str] = {}
        for name, tier in self.overrides.items():
            spec = self._spec(name)
            self._check_allowed(spec, tier)
            cost = self._cost(spec, tier)
            if cost > base.free[tier]:
                raise PlacementError(
                    f"place[{name!r}] = {tier!r}: array {name!r} needs {format_size(cost)} there, "
                    f"{tier} has {format_size(max(0, base.free[tier]))} left "
                    f"({self._room_text(tier, base, capacity)})")
            base.take(tier, name, cost)
            fixed_tiers[name] = tier

        features = self.specs.get("features")
        fixed = self._claim_fixed_caches(base, features)
        auto = sorted((s for s in self.specs.values() if s.name not in fixed_tiers),
                      key=lambda s: (_RANK[s.role], s.nbytes, s.name))
        # Every array on the SSD holds DRAM read buffers while it is read. Which arrays end
        # there depends on the DRAM left, so place with the buffers of a guessed set held,
        # and grow the guess until the placement needs no more than it (a few passes).
        guess = {n for n, t in fixed_tiers.items() if t == "ssd"}
        while True:
            led = base.copy()
            led.take("dram", SSD_IO, sum(self._ssd_io_bytes(self.specs[n]) for n in guess))
            tiers = dict(fixed_tiers)
            unplaced = self._place_greedily(auto, led, tiers)
            on_ssd = {n for n, t in tiers.items() if t == "ssd"}
            if on_ssd <= guess:
                break
            guess |= on_ssd
        if unplaced:
            raise PlacementError(self._unplaced_text(unplaced, led, capacity))
        held = led.holders["dram"].pop(SSD_IO, 0)
        led.free["dram"] += held
        if on_ssd:
            led.take("dram", SSD_IO, sum(self._ssd_io_bytes(self.specs[n]) for n in on_ssd))
        if led.free["dram"] < 0:
            raise PlacementError(
                f"the SSD tiers' read buffers ({format_size(led.holders['dram'][SSD_IO])} for "
                f"{sorted(on_ssd)}: queue_depth x (max_run_bytes + a row's pages) each) do not "
                f"fit: {self._room_text('dram', led, capacity)}; give --dram-budget of at least "
                f"{format_size(self.dram_budget - led.free['dram'], ceil=True)}")

        dram_rows, pmem_rows = self._size_caches(led, features, tiers, fixed)
        return Placement(tiers=tiers, dram_cache_rows=dram_rows, pmem_cache_rows=pmem_rows,
                         dram=led.holders["dram"], pmem=led.holders["pmem"],
                         ssd=led.holders["ssd"], dram_budget=self.dram_budget,
                         pmem_capacity=capacity, notes=tuple(notes))

    def _place_greedily(self, auto: list[ArraySpec], led: _Ledger,
                        tiers: dict[str, str]) -> list[ArraySpec]:
        """Each array, in rank order, on the fastest allowed tier with room; the ones that fit
        nowhere are returned. An array that lands on the SSD gives back nothing: its read
        buffers are held already (see _decide)."""
        unplaced = []
        for spec in auto:
            for tier in self._allowed(spec):
                cost = self._cost(spec, tier)
                if cost <= led.free[tier]:
                    led.take(tier, spec.name, cost)
                    tiers[spec.name] = tier
                    break
            else:
                unplaced.append(spec)
        return unplaced

    def _ssd_io_bytes(self, spec: ArraySpec) -> int:
        """DRAM one read of an SSD tier holds: queue_depth aligned buffers, each a run of
        max_run_bytes plus the pages of one row (native/ssd_reader.c)."""
        opts = self.ssd_options
        run = max(_PAGE, opts["max_run_bytes"] // _PAGE * _PAGE)
        return opts["queue_depth"] * (run + -(-spec.row_bytes // _PAGE) * _PAGE + _PAGE)

    def _claim_fixed_caches(self, led: _Ledger, features: ArraySpec | None) -> dict[str, int]:
        """Rows of the caches whose size the user fixed, claimed before automatic placement."""
        fixed = {}
        for level, want in (("pmem", self.pmem_cache), ("dram", self.dram_cache)):
            if want is None or want == 0:
                continue
            if features is None:
                raise PlacementError(f"{level}_cache={format_size(want)}: dataset "
                                     f"{self.dataset.path} has no features to cache")
            if level == "pmem" and self.pmem is None:
                raise PlacementError(f"pmem_cache={format_size(want)} needs a PMem pool (--pmem)")
            rows = min(features.shape[0], want // max(1, features.row_bytes))
            self._take_cache(led, level, features, rows, exact=True)
            fixed[level] = rows
        return fixed

    def _take_cache(self, led: _Ledger, level: str, features: ArraySpec, rows: int,
                    exact: bool) -> None:
        meta = rows * self.cache_slot_bytes + features.shape[0] * self.cache_map_bytes_per_node
        cost = (rows * features.row_bytes if level == "dram"
                else array_pool_bytes(rows, features.row_bytes, self.pmem_chunk_bytes))
        need_dram = meta + (cost if level == "dram" else 0)
        short_pmem = level == "pmem" and cost > led.free["pmem"]
        if exact and (need_dram > led.free["dram"] or short_pmem):
            raise PlacementError(
                f"{level}_cache of {rows} feature rows needs {format_size(need_dram)} of DRAM"
                + (f" and {format_size(cost)} of PMem" if level == "pmem" else "")
                + f"; DRAM has {format_size(max(0, led.free['dram']))} left"
                + (f", PMem {format_size(max(0, led.free['pmem']))}" if level == "pmem" else "")
                + f"; give --dram-budget of at least "
                  f"{format_size(self.dram_budget - led.free['dram'] + need_dram, ceil=True)}")
        if level == "pmem":
            led.take("pmem", FEATURE_CACHE, cost)
            led.take("dram", "pmem cache bookkeeping", meta)
        else:
            led.take("dram", "dram feature cache", cost)
            led.take("dram", "dram cache bookkeeping", meta)

    def _size_caches(self, led: _Ledger, features: ArraySpec | None, tiers: dict[str, str],
                     fixed: dict[str, int]) -> tuple[int, int]:
        if features is None or tiers["features"] == "dram":
            for level in fixed:                          # the features fit DRAM after all
                self._untake_cache(led, level)
            return 0, 0
        n, rb = features.shape[0], features.row_bytes
        pmem_rows = fixed.get("pmem", 0)
        if tiers["features"] == "pmem" and "pmem" in fixed:
            self._untake_cache(led, "pmem")
            pmem_rows = 0
        if tiers["features"] == "ssd" and self.pmem is not None and self.pmem_cache is None:
            map_bytes = n * self.cache_map_bytes_per_node
            by_dram = (led.free["dram"] // 2 - map_bytes) // max(1, self.cache_slot_bytes)
            pmem_rows = max(0, min(n, by_dram, self._rows_in_pool(led.free["pmem"], rb)))
            if pmem_rows:
                self._take_cache(led, "pmem", features, pmem_rows, exact=False)
        dram_rows = fixed.get("dram", 0)
        if self.dram_cache is None:
            map_bytes = n * self.cache_map_bytes_per_node
            per_row = rb + self.cache_slot_bytes
            dram_rows = max(0, min(n, (led.free["dram"] - map_bytes) // per_row))
            if dram_rows:
                self._take_cache(led, "dram", features, dram_rows, exact=False)
        return int(dram_rows), int(pmem_rows)

    def _untake_cache(self, led: _Ledger, level: str) -> None:
        names = ((FEATURE_CACHE, "pmem"), ("pmem cache bookkeeping", "dram")) if level == "pmem" \
            else (("dram feature cache", "dram"), ("dram cache bookkeeping", "dram"))
        for holder, tier in names:
            led.free[tier] += led.holders[tier].pop(holder, 0)

    def _rows_in_pool(self, room: int, row_bytes: int) -> int:
        """Most rows whose array fits `room` pool bytes."""
        lo, hi = 0, max(0, room) // max(1, row_bytes)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if array_pool_bytes(mid, row_bytes, self.pmem_chunk_bytes) <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def _allowed(self, spec: ArraySpec) -> tuple[str, ...]:
        to_ssd_dir = spec.learnable and self.ssd_dir is not None
        memory_only = spec.role in _MEMORY_ONLY and not to_ssd_dir
        tiers = ("dram", "pmem") if memory_only else TIERS
        return tiers if self.pmem is not None else tuple(t for t in tiers if t != "pmem")

    def _check_allowed(self, spec: ArraySpec, tier: str) -> None:
        if tier == "pmem" and self.pmem is None:
            raise PlacementError(f"place[{spec.name!r}] = 'pmem' needs a PMem pool "
                                 "(--pmem PATH:SIZE)")
        if tier == "ssd" and spec.learnable and self.ssd_dir is None:
            raise PlacementError(f"place[{spec.name!r}] = 'ssd': a learnable array on the SSD "
                                 "needs a directory for its file (ssd_dir=)")

    def _cost(self, spec: ArraySpec, tier: str) -> int:
        return self._pool_cost(spec) if tier == "pmem" else spec.nbytes

    def _spec(self, name: str) -> ArraySpec:
        try:
            return self.specs[name]
        except KeyError:
            raise PlacementError(f"place[{name!r}]: no such array (dataset {self.dataset.path} has "
                                 f"{sorted(self.specs)})") from None

    def _memory_only_bytes(self) -> int:
        return sum(s.nbytes for s in self.specs.values() if s.role in _MEMORY_ONLY)

    def _unplaced_text(self, unplaced: list[ArraySpec], led: _Ledger, capacity: int) -> str:
        need = sum(s.nbytes for s in unplaced)
        names = ", ".join(f"{s.name!r} ({s.role}, {format_size(s.nbytes)})" for s in unplaced)
        text = (f"cannot place {names}: {'it' if len(unplaced) == 1 else 'they'} must live in "
                f"DRAM or PMem and need {format_size(need)}; "
                f"{self._room_text('dram', led, capacity)}; "
                f"{self._room_text('pmem', led, capacity)}. Needed: --dram-budget of at least "
                f"{format_size(self.dram_budget - led.free['dram'] + need, ceil=True)}")
        pool_need = sum(self._pool_cost(s) for s in unplaced)
        used_pool = sum(led.holders["pmem"].values())
        size = pool_size_for(used_pool + pool_need + tx_headroom(self.tx_bytes),
                             self.pmem_chunk_bytes)
        text += f", or a PMem pool of at least {format_size(size, ceil=True)} (--pmem PATH:SIZE)"
        if self.ssd_dir is None and any(s.learnable for s in unplaced):
            text += "; or let learnable arrays go to the SSD (ssd_dir=)"
        return text

    def _room_text(self, tier: str, led: _Ledger, capacity: int) -> str:
        if tier == "pmem":
            if self.pmem is None:
                return "no PMem pool is configured"
            return (f"the PMem pool has {format_size(max(0, led.free['pmem']))} left of "
                    f"{format_size(capacity)} usable")
        if tier == "dram":
            io = led.holders["dram"].get(SSD_IO, 0)
            return (f"DRAM has {format_size(max(0, led.free['dram']))} left of the "
                    f"{format_size(self.dram_budget)} budget"
                    + (f" ({format_size(io)} of it held for the SSD tiers' read buffers)"
                       if io else ""))
        return "the SSD holds the dataset's files"

    # ---- opening ------------------------------------------------------------------------
    def open(self) -> dict[str, Tier]:
        """Load DRAM arrays, fill or reuse the PMem pool, open SSD tiers; name -> Tier."""
        with self._lock:
            if self._opened:
                return dict(self._tiers)
            p = self.plan()
            try:
                if p.on("pmem") or p.pmem_cache_rows:
                    self._open_pool(p)
                for name, tier in p.tiers.items():
                    if tier == "dram":
                        self._tiers[name] = self._dram_tier(self.specs[name])
                    elif tier == "ssd":
                        self._tiers[name] = self._ssd_tier(self.specs[name])
                if p.dram_cache_rows:
                    f = self.specs["features"]
                    self._caches["dram"] = DRAMTier(
                        np.zeros((p.dram_cache_rows,) + f.shape[1:], f.dtype),
                        name="dram:feature_cache", pin=False)
            except BaseException:
                self.close()
                raise
            self._opened = True
            self._note_peak()
            return dict(self._tiers)

    def _open_pool(self, p: Placement) -> None:
        from .tiers.pmem import PMemError, PMemPool
        path, size = self.pmem
        self._pool = pool = PMemPool.open_or_create(path, size)
        wanted: dict[str, tuple[ArraySpec | None, int]] = {}
        for name in p.on("pmem"):
            spec = self.specs[name]
            key = (layout_source_key(spec.layout) if spec.layout is not None
                   else source_key("learnable", name, spec.shape, spec.dtype.str, spec.role))
            wanted[name] = (spec, key)
        if p.pmem_cache_rows:
            wanted[FEATURE_CACHE] = (None, 0)
        cache_shape = (p.pmem_cache_rows,) + self.specs["features"].shape[1:] \
            if p.pmem_cache_rows else None
        for name, info in pool.arrays().items():
            spec, key = wanted.get(name, (None, None))
            if name == FEATURE_CACHE and cache_shape is not None:
                keep = info.shape == cache_shape and info.dtype == self.specs["features"].dtype
            else:
                keep = (spec is not None and info.ready and info.source_key == key
                        and info.shape == spec.shape and info.dtype == spec.dtype)
            if keep:
                self._open_notes.append(f"pmem: reused {name!r} from {path}")
            else:
                pool.delete_array(name)
        have = pool.arrays()
        try:
            for name, (spec, key) in wanted.items():
                if name not in have:
                    shape = cache_shape if spec is None else spec.shape
                    dtype = self.specs["features"].dtype if spec is None else spec.dtype
                    pool.create_array(name, shape, dtype, chunk_bytes=self.pmem_chunk_bytes,
                                      source_key=key)
        except PMemError as e:
            raise PlacementError(f"{e} (placement: {p.pmem})") from None
        for name, (spec, key) in wanted.items():
            if spec is None:
                self._caches["pmem"] = pool.tier(name, durable=False)
                continue
            tier = pool.tier(name, durable=True, tx_bytes=self.tx_bytes)
            if not pool.info(name).ready:
                source = spec.layout if spec.layout is not None else _init_source(spec)
                tier.load(source, source_key=key)
                self._open_notes.append(f"pmem: loaded {name!r} into {path}")
            self._tiers[name] = tier

    def _dram_tier(self, spec: ArraySpec) -> DRAMTier:
        if spec.layout is not None:
            return DRAMTier(spec.layout.read_all(), name=f"dram:{spec.name}", pin=False)
        array = np.empty(spec.shape, spec.dtype)
        for a, b, rows in _init_blocks(spec):
            array[a:b] = rows
        return DRAMTier(array, name=f"dram:{spec.name}", pin=False)

    def _ssd_tier(self, spec: ArraySpec) -> Tier:
        """A dataset array read in place, or a learnable one written afresh under ssd_dir
        (its rows are then updated in place: not crash-atomic, so no run resumes from it)."""
        from .tiers.ssd import SSDTier             # native module: imported only when needed
        layout = spec.layout
        if layout is None:
            with ArrayWriter(self.ssd_dir, spec.name, spec.shape, spec.dtype) as w:
                for _, _, rows in _init_blocks(spec):
                    w.write(rows)
            layout = w.layout
            self._open_notes.append(f"ssd: wrote {spec.name!r} to {layout.directory}")
        return SSDTier(layout, writable=spec.learnable, name=f"ssd:{spec.name}",
                       **self.ssd_options)

    # ---- using ------------------------------------------------------------------------
    def tier(self, name: str) -> Tier:
        """The open tier of array `name`."""
        if not self._opened:
            raise RuntimeError("TierManager.tier(): call open() first")
        try:
            return self._tiers[name]
        except KeyError:
            raise KeyError(f"no array {name!r} (have {sorted(self._tiers)})") from None

    def cache_tier(self, level: str) -> Tier | None:
        """The DRAM ("dram") or PMem ("pmem") feature cache's storage, None if it has no rows."""
        if level not in ("dram", "pmem"):
            raise ValueError(f"cache level {level!r}: expected 'dram' or 'pmem'")
        if not self._opened:
            raise RuntimeError("TierManager.cache_tier(): call open() first")
        return self._caches.get(level)

    @property
    def pool(self):
        """The open PMemPool, if any array or cache lives in PMem (for transactions)."""
        return self._pool

    def usage(self) -> dict[str, dict]:
        """Per tier: budget (or capacity), bytes in use now, peak, and holders."""
        p = self.plan()
        with self._lock:
            dram = self._dram_holders()
            return {
                "dram": {"budget": self.dram_budget, "used": sum(dram.values()),
                         "peak": max(self._peak["dram"], sum(dram.values())), "holders": dram},
                "pmem": {"budget": p.pmem_capacity, "used": sum(p.pmem.values()),
                         "peak": max(self._peak["pmem"], sum(p.pmem.values())),
                         "holders": dict(p.pmem)},
                "ssd": {"budget": 0, "used": sum(p.ssd.values()),
                        "peak": sum(p.ssd.values()), "holders": dict(p.ssd)},
            }

    def report(self) -> str:
        """Peak use per tier (and the process's peak RSS, to compare with the DRAM account)."""
        u = self.usage()
        lines = [f"{'tier':5} {'peak':>10} {'now':>10} {'budget':>10}"]
        for tier in TIERS:
            b = u[tier]["budget"]
            peak, now = format_size(u[tier]["peak"]), format_size(u[tier]["used"])
            lines.append(f"{tier:5} {peak:>10} {now:>10} {format_size(b) if b else '-':>10}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        lines.append(f"process peak RSS {format_size(rss)} (includes Python, torch, and "
                     "mapped file pages such as an emulated pool's)")
        lines.extend(self._open_notes)
        return "\n".join(lines)

    def close(self) -> None:
        """Close every tier and the pool. Idempotent."""
        with self._lock:
            for t in list(self._tiers.values()) + list(self._caches.values()):
                t.close()
            self._tiers.clear()
            self._caches.clear()
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            self._opened = False

    def __enter__(self) -> "TierManager":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- accounting internals ------------------------------------------------------------
    def _dram_holders(self) -> dict[str, int]:
        p = self._placement
        held = {k: v for k, v in p.dram.items() if not k.startswith("reserve:")} if p else {}
        held.update({f"reserve:{k}": v for k, v in self._reserved.items()})
        return held

    def _dram_used(self) -> int:
        return sum(self._dram_holders().values())

    def _note_peak(self) -> None:
        self._peak["dram"] = max(self._peak["dram"], self._dram_used())
        if self._placement is not None:
            self._peak["pmem"] = max(self._peak["pmem"], sum(self._placement.pmem.values()))

    def _holders_text(self) -> str:
        return ", ".join(f"{k} {format_size(v)}" for k, v in self._dram_holders().items())

    def _reserved_text(self) -> str:
        return ", ".join(f"{k} {format_size(v)}" for k, v in self._reserved.items())

    def _check_unopened(self, what: str) -> None:
        if self._opened:
            raise RuntimeError(f"TierManager.{what}: the placement is fixed once open() ran")


def _init_blocks(spec: ArraySpec) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, rows) of a learnable array's initial value, 64 MiB at a time."""
    fill = _init_source(spec)
    step = max(1, _INIT_BLOCK_BYTES // max(1, spec.row_bytes))
    for a in range(0, spec.shape[0], step):
        b = min(spec.shape[0], a + step)
        yield a, b, fill(a, b)


def _init_source(spec: ArraySpec) -> Callable[[int, int], np.ndarray]:
    """f(start, stop) -> rows of a learnable array's initial value."""
    init = spec.init
    if callable(init):
        return init
    if isinstance(init, np.ndarray):
        if init.shape != spec.shape:
            raise ValueError(f"learnable {spec.name!r}: init has shape {init.shape}, "
                             f"expected {spec.shape}")
        return lambda a, b: init[a:b]
    value = float(init)
    return lambda a, b: np.full((b - a,) + spec.shape[1:], value, spec.dtype)
