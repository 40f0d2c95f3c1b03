"""The cost model: predicted epoch time of a placement, from probe and profile figures only.

Pure functions (no I/O, no clocks): `predict(placement, traffic, workload, probes)`
prices each term of an epoch (docs/advisor.md gives every formula):

  sampling    sample_s/batch x batches                       (inspector thread)
  planning    the policy's measured planning time             (inspector thread)
  load_<tier> rows (or SSD requests and pages) x the probe's per-row cost at the
              rows per call the plan makes                    (loader thread)
  assemble    batch rows x DRAM gather cost, plus the measured per-batch bookkeeping
              (degrees, blocks, labels)                       (loader thread)
  move        rows written into each cache level x that tier's write cost (loader thread)
  compute     compute_s/batch x batches                       (training thread)

and combines them with the pipeline the engine runs (three threads over shared
cores): the epoch is bounded below by each thread's own chain and by the CPU
work all of them put on the cores; SSD waiting is not CPU work.

    epoch = max(cpu, loader, inspector, compute) + fill
    cpu    = sampling + planning + (loads but SSD) + SSD CPU + assemble + move + compute
    loader = loads (SSD at wall time) + assemble + move
    fill   = the first superbatch's sampling and planning + one batch's loading
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .probe import row_cost, ssd_request_cost


@dataclass(frozen=True)
class Workload:
    """Per-batch figures of the workload (from the profile)."""

    batches: float                   # per epoch
    row_bytes: int
    superbatch: int
    sample_seconds_per_batch: float
    compute_seconds_per_batch: float
    batch_overhead_seconds_per_batch: float = 0.0     # degrees, blocks, labels per batch


@dataclass(frozen=True)
class PlacementFigures:
    """What the cost model needs of a placement (from the TierManager)."""

    name: str
    features_on: str                 # backing tier of the feature rows: dram | pmem | ssd
    levels: tuple[str, ...]          # cache levels, e.g. ("dram",) or ("dram", "pmem"); () none
    bytes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrafficFigures:
    """Per-epoch rows the plan moves (profile.Traffic has these fields)."""

    rows: float
    loads: tuple[float, ...]         # reads from cache level 1.. and last the backing tier
    moves: tuple[float, ...]         # writes into cache level 0..
    demotion_reads: tuple[float, ...]
    backing_pages: float
    backing_requests: float
    plan_seconds: float
    direct: bool                     # no cache: rows read straight into the batch

    @classmethod
    def of(cls, t) -> TrafficFigures:
        return cls(t.rows, tuple(t.loads), tuple(t.moves), tuple(t.demotion_reads),
                   t.backing_pages, t.backing_requests, t.plan_seconds, t.direct)


@dataclass
class Prediction:
    """A placement's predicted epoch, with its terms."""

    name: str
    epoch_seconds: float
    terms: dict                      # term -> seconds per epoch
    bound: str                       # which of cpu / loader / inspector / compute decides
    chains: dict                     # cpu, loader, inspector, compute, fill seconds
    hit_rates: dict                  # dram_cache, pmem_cache, backing: share of batch rows
    bytes: dict

    def as_dict(self) -> dict:
        return dict(vars(self))


def _mem_read(probe: dict, rb: int, rows_per_call: float) -> float:
    return row_cost(probe["random_reads"], rb, max(rows_per_call, 1.0))


def _mem_write(probe: dict, rb: int, rows_per_call: float) -> float:
    entries = [e for e in probe["writes"] if not e.get("durable", False)]
    return row_cost(entries, rb, max(rows_per_call, 1.0))


def _ssd_read(ssd: dict, pages: float, requests: float, batches: float) -> tuple[float, float]:
    """(wall, CPU) seconds of reading `pages` in `requests` merged requests over `batches`
    calls: requests at the random-request cost for that many per call, the pages beyond
    one per request at the sequential bandwidth."""
    if requests <= 0:
        return 0.0, 0.0
    per_call = requests / max(batches, 1.0)
    extra = max(0.0, pages - requests) * ssd["page_bytes"]
    wall = requests * ssd_request_cost(ssd, per_call) + extra / (ssd["sequential_MBps"] * 1e6)
    cpu = (requests * ssd_request_cost(ssd, per_call, "cpu_per_row")
           + extra * ssd.get("sequential_cpu_per_byte", 0.0))
    return wall, cpu


def predict(p: PlacementFigures, t: TrafficFigures, w: Workload, probes: dict) -> Prediction:
    """The epoch time of placement `p` with traffic `t` (see the module doc)."""
    rb, B = w.row_bytes, max(w.batches, 1.0)
    tiers = list(p.levels[1:]) + [p.features_on]     # what loads[k] reads from
    if p.features_on not in probes or probes[p.features_on] is None:
        raise ValueError(f"{p.name}: no probe figures for the {p.features_on} tier")
    terms = {"sampling": w.sample_seconds_per_batch * B, "planning": t.plan_seconds}
    ssd_wall = ssd_cpu = 0.0
    mem_loads = 0.0
    for tier, rows in zip(tiers, t.loads):
        key = f"load_{tier}"
        if tier == "ssd":
            ssd_wall, ssd_cpu = _ssd_read(probes["ssd"], t.backing_pages, t.backing_requests, B)
            terms[key] = terms.get(key, 0.0) + ssd_wall
        else:
            s = rows * _mem_read(probes[tier], rb, rows / B) if rows else 0.0
            terms[key] = terms.get(key, 0.0) + s
            mem_loads += s
    terms["assemble"] = w.batch_overhead_seconds_per_batch * B + (
        0.0 if t.direct else t.rows * _mem_read(probes["dram"], rb, t.rows / B))
    move = 0.0
    for level, (written, read) in enumerate(zip(t.moves, t.demotion_reads)):
        tier = p.levels[level] if level < len(p.levels) else "dram"
        if written:
            move += written * _mem_write(probes[tier], rb, written / B)
        if read:
            move += read * _mem_read(probes[tier], rb, read / B)
    terms["move"] = move
    terms["compute"] = w.compute_seconds_per_batch * B
    inspector = terms["sampling"] + terms["planning"]
    loader = ssd_wall + mem_loads + terms["assemble"] + move
    cpu = inspector + mem_loads + ssd_cpu + terms["assemble"] + move + terms["compute"]
    chains = {"cpu": cpu, "loader": loader, "inspector": inspector, "compute": terms["compute"]}
    bound = max(chains, key=chains.get)
    fill = inspector * min(w.superbatch, B) / B + loader / B
    chains["fill"] = fill
    rows = max(t.rows, 1.0)
    hits = {"dram_cache": 1.0 - sum(t.loads) / rows if not t.direct else 0.0}
    if len(p.levels) > 1:
        hits["pmem_cache"] = t.loads[0] / rows
    hits["backing"] = t.loads[-1] / rows
    return Prediction(p.name, chains[bound] + fill, terms, bound, chains, hits, dict(p.bytes))


def rank(predictions: list[Prediction]) -> list[Prediction]:
    """Fastest first."""
    return sorted(predictions, key=lambda q: q.epoch_seconds)
