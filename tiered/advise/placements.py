"""Candidate placements: the ones the TierManager accepts for this dataset, budget and pool.

A candidate is a `tiered-train` setting (features_on, cache policy, cache size, PMem
pool); its placement (which array on which tier, cache rows per level, bytes per
tier) is asked of the real TierManager with the same batch-buffer reservations
NodeLoader makes, so the placement the advisor prices is the one training gets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..dataset import Dataset
from ..manager import PlacementError
from ..train.config import TrainConfig, make_config
from ..train.loader import placement_manager
from ..units import format_size

# (features_on, cache policy, uses the PMem pool): the kinds of placement compared
KINDS = (("dram", "none", False), ("ssd", "belady", False), ("ssd", "lru", False),
         ("ssd", "none", False), ("ssd", "belady", True), ("pmem", "belady", True),
         ("pmem", "lru", True), ("pmem", "none", True))


class NoPlacementError(ValueError):
    """No candidate fits the DRAM budget (and pool); the message says what would."""


@dataclass
class Candidate:
    """One placement the advisor prices."""

    name: str
    features_on: str
    cache: str                       # belady | lru | none (what the loader will run)
    cache_size: str | None           # the config's cache_size (None: what the budget leaves)
    pmem: str | None                 # PATH:SIZE when this candidate uses the pool
    dram_budget: int
    feasible: bool = True
    error: str = ""
    tiers: dict = field(default_factory=dict)
    dram_cache_rows: int = 0
    pmem_cache_rows: int = 0
    bytes: dict = field(default_factory=dict)     # tier -> bytes held
    table: str = ""

    @property
    def capacities(self) -> tuple[int, ...]:
        """The cache policy's capacities, as NodeLoader builds them."""
        return (self.dram_cache_rows,) + ((self.pmem_cache_rows,) if self.pmem_cache_rows else ())

    @property
    def policy(self) -> str:
        """The policy the loader runs (none when no cache has rows)."""
        return self.cache if sum(self.capacities) else "none"

    def config(self, base: TrainConfig) -> dict:
        """The settings `tiered-train --config` takes for this placement."""
        keys = ("dataset", "model", "fanouts", "batch_size", "hidden", "dropout", "heads", "lr",
                "weight_decay", "superbatch", "prefetch", "seed", "epochs")
        out = {k: getattr(base, k) for k in keys}
        out.update(dram_budget=size_text(self.dram_budget), features_on=self.features_on,
                   cache=self.cache)
        if self.cache_size is not None:
            out["cache_size"] = self.cache_size
        if self.pmem is not None:
            out["pmem"] = self.pmem
        return out


def size_text(nbytes: int) -> str:
    """Bytes as an exact size string for a config ("1536MiB", "12345")."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if nbytes and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{unit}"
    return str(nbytes)


def _name(features_on: str, cache: str, pool: bool, size: str | None) -> str:
    name = "features in DRAM" if features_on == "dram" else f"{features_on}+{cache}"
    if pool and features_on == "ssd":
        name += "+pmem-cache"
    if size is not None:
        name += f" @{size}"
    return name


def candidates(ds: Dataset, base: TrainConfig, dram_budget: int, pmem: str | None,
               rows: int, cache_sizes: tuple[str, ...] = ()) -> list[Candidate]:
    """Every kind of placement (KINDS) at the largest cache the budget leaves, plus each
    fixed DRAM cache size of `cache_sizes` ("10%", rows or bytes) smaller than that;
    infeasible ones are kept with the manager's reason."""
    out = []
    n, rb = ds.num_nodes, ds.layout("features").row_bytes
    for features_on, cache, pool in KINDS:
        if pool and pmem is None:
            continue
        sizes: list[str | None] = [None]
        if cache != "none":
            sizes += list(cache_sizes)
        biggest = None
        for size in sizes:
            if size is not None:
                rows_asked = make_config(dataset=base.dataset, cache_size=size).cache_rows(n, rb)
                if biggest is None or rows_asked >= biggest or rows_asked <= 0:
                    continue
                size = str(rows_asked)
            c = Candidate(_name(features_on, cache, pool, None if size is None else
                                _share(int(size), n)), features_on, cache, size,
                          pmem if pool else None, dram_budget)
            cfg = make_config(**{**base.to_dict(), **c.config(base)})
            try:
                p = placement_manager(ds, cfg, rows).plan()
            except PlacementError as e:
                c.feasible, c.error = False, str(e)
                out.append(c)
                break
            c.tiers = dict(p.tiers)
            c.dram_cache_rows, c.pmem_cache_rows = p.dram_cache_rows, p.pmem_cache_rows
            c.bytes = {"dram": sum(p.dram.values()), "pmem": sum(p.pmem.values()),
                       "ssd": sum(p.ssd.values())}
            c.table = p.describe()
            if size is None:
                biggest = p.dram_cache_rows
                if c.features_on != "dram" and not sum(c.capacities) and cache != "none":
                    c.feasible, c.error = False, "the budget leaves no room for a cache"
            out.append(c)
    return out


def _share(rows: int, n: int) -> str:
    return f"{100 * rows / n:.3g}%"


def needed_budget(ds: Dataset, base: TrainConfig, pmem: str | None,
                  rows: int) -> tuple[int, str]:
    """The smallest DRAM budget at which some candidate fits, and what the leanest placement
    holds there: a binary search with the real manager for each kind without a cache."""
    best: tuple[int, str] | None = None
    for features_on, cache, pool in KINDS:
        if cache != "none" or (pool and pmem is None):
            continue
        cfg = make_config(**{**base.to_dict(), "features_on": features_on, "cache": "none",
                             "pmem": pmem if pool else None, "dram_budget": str(1 << 50)})
        lo, hi = 0, sum(placement_manager(ds, cfg, rows).plan().dram.values())
        while lo < hi:
            mid = (lo + hi) // 2
            cfg.dram_budget = str(mid)
            try:
                placement_manager(ds, cfg, rows).plan()
                hi = mid
            except PlacementError:
                lo = mid + 1
        if best is not None and lo >= best[0]:
            continue
        cfg.dram_budget = str(lo)
        at = placement_manager(ds, cfg, rows).plan()
        held = ", ".join(f"{k.removeprefix('reserve:')} {format_size(v)}"
                         for k, v in at.dram.items())
        away = [f"{k} on {t}" for k, t in at.tiers.items() if t != "dram"]
        where = {"dram": "features in DRAM", "ssd": "features on the SSD, no cache",
                 "pmem": "features in PMem, no cache"}[features_on]
        best = lo, (f"{where}: it holds {held} in DRAM"
                    + (f", and {', '.join(away)}" if away else ""))
    assert best is not None
    return best


def feasible_or_raise(cands: list[Candidate], ds: Dataset, base: TrainConfig, dram_budget: int,
                      pmem: str | None, rows: int) -> list[Candidate]:
    """The feasible candidates; NoPlacementError naming the budget needed when none is."""
    ok = [c for c in cands if c.feasible]
    if ok:
        return ok
    need, held = needed_budget(ds, base, pmem, rows)
    raise NoPlacementError(
        f"no placement fits a DRAM budget of {format_size(dram_budget)} for {ds.path}: the "
        f"leanest is {held} (batches of up to "
        f"{rows} rows). Give --dram-budget of at least {format_size(need, ceil=True)}"
        + ("" if pmem else ", or a PMem pool (--pmem PATH:SIZE) for the graph arrays") + ".")
