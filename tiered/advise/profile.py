"""The workload profile: what one training epoch asks of the tiers, from a sample of real batches.

The profile samples mini-batches exactly as `tiered-train` will (the same seeds
order, batch keys, fanouts and superbatches: epoch 0, then epoch 1), keeps every
batch's node ids (the inspector's access trace), and then answers:

* accesses per epoch, distinct rows, reuse distances (in batches);
* for any cache policy and capacities, the traffic of the *measured window* (the
  batches of epoch 1 when the sample reaches them: a warm cache, as in steady
  training), by running the real policy (BeladyPolicy, LRUPolicy, NoCache) on the
  sampled trace: rows read per level, the SSD pages and requests of the backing
  reads (the SSD tier's own page coalescing, replayed), rows moved into each
  cache level, and the planning time;
* the miss-rate curve against cache size under Belady and LRU;
* the measured time of sampling and of the model's forward + backward + step.

Figures of the window are scaled to a whole epoch (`scale`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import numpy as np

from ..dataset import Dataset
from ..inspector import batch_key
from ..plan import AccessTrace, make_policy
from ..sampling import NeighborSampler
from ..train.config import TrainConfig

PAGE = 4096
MAX_RUN_PAGES = (128 << 10) // PAGE     # SSDTier's default max_run_bytes


@numba.njit(nogil=True, cache=True)
def _pages_runs(ids, ptr, row_bytes, chunk_rows, page, max_run, sort):
    """Per batch: distinct device pages and merged requests the SSD tier issues to read
    rows ids[ptr[b]:ptr[b+1]] (sorted first when `sort`), as native/ssd_reader.c does:
    a page shared by rows is read once, adjacent pages merge up to `max_run` pages."""
    B = ptr.shape[0] - 1
    pages = np.zeros(B, np.int64)
    runs = np.zeros(B, np.int64)
    for b in range(B):
        seg = ids[ptr[b]:ptr[b + 1]]
        if sort:
            seg = np.sort(seg)
        last_file = -1
        last_page = -1
        run_len = 0
        for i in range(seg.shape[0]):
            x = np.int64(seg[i])
            f = x // chunk_rows
            off = (x - f * chunk_rows) * row_bytes
            p0 = off // page
            p1 = (off + row_bytes - 1) // page
            for p in range(p0, p1 + 1):
                if f == last_file and p <= last_page:
                    continue
                pages[b] += 1
                if f == last_file and p == last_page + 1 and run_len < max_run:
                    run_len += 1
                else:
                    runs[b] += 1
                    run_len = 1
                last_file = f
                last_page = p
    return pages, runs


def pages_and_runs(ids: np.ndarray, ptr: np.ndarray, row_bytes: int, chunk_rows: int,
                   sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """(pages, requests) per batch for reading those rows from the SSD tier."""
    return _pages_runs(np.ascontiguousarray(ids, np.int32), np.ascontiguousarray(ptr, np.int64),
                       int(row_bytes), int(chunk_rows), PAGE, MAX_RUN_PAGES, sort)


@dataclass
class Traffic:
    """One placement's per-epoch traffic (the window scaled to an epoch)."""

    policy: str
    capacities: tuple[int, ...]
    rows: float                         # batch rows (accesses)
    loads: list[float]                  # rows read from level 1..K (K = backing)
    moves: list[float]                  # rows written into cache level 0..K-1
    demotion_reads: list[float]         # rows read from cache level 0..K-1 for demotions
    backing_pages: float                # SSD pages of the backing reads (if the backing is SSD)
    backing_requests: float             # merged requests of those reads
    plan_seconds: float
    batches: float                      # batches per epoch
    direct: bool                        # no cache: rows read straight into the batch

    @property
    def hit_rate(self) -> float:
        """Share of rows served by the DRAM cache (level 0)."""
        return 1.0 - sum(self.loads) / max(self.rows, 1.0)

    def as_dict(self) -> dict:
        d = dict(vars(self))
        d["capacities"] = list(self.capacities)
        d["hit_rate"] = self.hit_rate
        return d


@dataclass
class Profile:
    """The sampled trace and the workload's measured figures (see module doc)."""

    cfg: TrainConfig
    num_nodes: int
    row_bytes: int
    feature_chunk_rows: int
    batches_per_epoch: int
    superbatches: list[tuple[int, np.ndarray, np.ndarray]]   # (epoch, ids, ptr)
    window: tuple[int, int]             # global batch range whose traffic is counted
    window_note: str
    sample_seconds_per_batch: float
    compute_seconds_per_batch: float
    batch_overhead_seconds_per_batch: float
    indices_on: str
    _sims: dict = field(default_factory=dict, repr=False)

    @property
    def sampled_batches(self) -> int:
        return sum(len(p) - 1 for _, _, p in self.superbatches)

    @property
    def scale(self) -> float:
        """Epoch batches per window batch."""
        return self.batches_per_epoch / max(1, self.window[1] - self.window[0])

    def _window_trace(self) -> tuple[np.ndarray, np.ndarray]:
        ids, lens, b = [], [], 0
        a, z = self.window
        for _, sids, sptr in self.superbatches:
            for i in range(len(sptr) - 1):
                if a <= b < z:
                    ids.append(sids[sptr[i]:sptr[i + 1]])
                    lens.append(sptr[i + 1] - sptr[i])
                b += 1
        ptr = np.zeros(len(lens) + 1, np.int64)
        np.cumsum(lens, out=ptr[1:])
        return (np.concatenate(ids) if ids else np.empty(0, np.int32)), ptr

    def figures(self) -> dict:
        """Accesses, distinct rows and reuse distances of the window (per-epoch scaled)."""
        ids, ptr = self._window_trace()
        B = len(ptr) - 1
        batch = np.repeat(np.arange(B, dtype=np.int64), np.diff(ptr))
        order = np.lexsort((batch, ids))
        s_ids, s_b = ids[order], batch[order]
        same = s_ids[1:] == s_ids[:-1]
        dist = (s_b[1:] - s_b[:-1])[same]
        distinct = int(len(ids) - same.sum())
        hist_edges = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1 << 30]
        hist = np.histogram(dist, bins=hist_edges)[0] if len(dist) else np.zeros(9, int)
        return {
            "batches_per_epoch": self.batches_per_epoch,
            "sampled_batches": self.sampled_batches,
            "window_batches": B, "window": self.window_note,
            "rows_per_batch": len(ids) / max(B, 1),
            "accesses_per_epoch": len(ids) * self.scale,
            "distinct_rows_in_window": distinct,
            "distinct_share_of_nodes": distinct / self.num_nodes,
            "reuse": {
                "reaccesses": len(dist),
                "median_batches": float(np.median(dist)) if len(dist) else None,
                "p90_batches": float(np.percentile(dist, 90)) if len(dist) else None,
                "histogram": {f"{lo}-{hi - 1}" if hi < 1 << 30 else f">={lo}": int(c)
                              for lo, hi, c in zip(hist_edges[:-1], hist_edges[1:], hist)},
            },
            "sample_seconds_per_batch": self.sample_seconds_per_batch,
            "compute_seconds_per_batch": self.compute_seconds_per_batch,
            "batch_overhead_seconds_per_batch": self.batch_overhead_seconds_per_batch,
            "indices_on": self.indices_on,
        }

    def simulate(self, policy: str, capacities: tuple[int, ...], backing_ssd: bool) -> Traffic:
        """Run the real cache policy over the sampled trace; traffic of the window, per epoch.

        The policy sees every sampled superbatch in order (so epoch 1 starts with the cache
        epoch 0 left, as in training) and keeps its state across epochs, like the loader."""
        caps = tuple(int(c) for c in capacities)
        if policy == "none" or not sum(caps):
            policy, caps = "none", (0,)
        key = (policy, caps, backing_ssd)
        if key in self._sims:
            return self._sims[key]
        pol = make_policy(policy, caps if len(caps) > 1 else caps[0], self.num_nodes)
        K = len(caps) if policy != "none" else 1
        loads = np.zeros(K, np.float64)
        moves = np.zeros(K, np.float64)
        dem = np.zeros(K, np.float64)
        rows = pages = runs = 0.0
        plan_s = 0.0
        a, z = self.window
        b0 = 0
        for _, ids, ptr in self.superbatches:
            B = len(ptr) - 1
            t0 = time.perf_counter()
            plan = pol.plan(AccessTrace(ids, ptr, self.num_nodes))
            dt = time.perf_counter() - t0
            lo, hi = max(a, b0) - b0, min(z, b0 + B) - b0
            b0 += B
            if lo >= hi:
                continue
            plan_s += dt * (hi - lo) / B
            rows += plan.batch_ptr[hi] - plan.batch_ptr[lo]
            if policy == "none":
                loads[0] += plan.batch_ptr[hi] - plan.batch_ptr[lo]
                if backing_ssd:
                    p, r = pages_and_runs(plan.row_ids, plan.batch_ptr[lo:hi + 1],
                                          self.row_bytes, self.feature_chunk_rows, sort=True)
                    pages, runs = pages + p.sum(), runs + r.sum()
                continue
            la, lz = plan.load_ptr[lo], plan.load_ptr[hi]
            lvl = plan.load_level[la:lz]
            loads += np.bincount(lvl, minlength=K + 1)[1:]
            ma, mz = plan.move_ptr[lo], plan.move_ptr[hi]
            moves += np.bincount(plan.move_level[ma:mz], minlength=K)[:K]
            src = plan.move_src_level[ma:mz]
            dem += np.bincount(src[src >= 0], minlength=K)[:K]
            if backing_ssd:
                per_batch = np.diff(plan.load_ptr[lo:hi + 1])
                batch_of = np.repeat(np.arange(hi - lo), per_batch)
                back = lvl == K
                cnt = np.bincount(batch_of[back], minlength=hi - lo)
                bptr = np.zeros(hi - lo + 1, np.int64)
                np.cumsum(cnt, out=bptr[1:])
                p, r = pages_and_runs(plan.load_ids[la:lz][back], bptr, self.row_bytes,
                                      self.feature_chunk_rows, sort=False)
                pages, runs = pages + p.sum(), runs + r.sum()
        s = self.scale
        t = Traffic(policy, caps, rows * s, list(loads * s), list(moves * s), list(dem * s),
                    pages * s, runs * s, plan_s * s, float(self.batches_per_epoch),
                    direct=policy == "none")
        self._sims[key] = t
        return t

    def miss_curve(self, capacities: list[int], policies=("belady", "lru"),
                   progress: bool = False) -> dict:
        """Hit rate of the window against DRAM cache rows, for each policy."""
        from tqdm import tqdm
        out = {}
        jobs = [(p, c) for p in policies for c in capacities]
        for p, c in tqdm(jobs, desc="miss-rate curve", unit="run", leave=False,
                         disable=not progress):
            t = self.simulate(p, (c,), backing_ssd=False)
            out.setdefault(p, []).append({"cache_rows": int(c), "hit_rate": t.hit_rate,
                                          "miss_rate": 1 - t.hit_rate})
        return out


def seed_batches(train_ids: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The loader's seed batches of an epoch (NodeLoader.seed_batches)."""
    ids = train_ids[np.random.default_rng([seed, epoch]).permutation(len(train_ids))]
    return [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]


def profile_workload(ds: Dataset, cfg: TrainConfig, indices_on: str = "dram",
                     max_batches: int = 256, compute_batches: int = 4,
                     progress: bool = True) -> Profile:
    """Sample up to `max_batches` batches (epoch 0 then epoch 1, as training would), time
    sampling and the model, and return the Profile."""
    from tqdm import tqdm
    indptr = ds.load("indptr")
    lay = ds.layout("indices")
    if indices_on == "dram":
        indices = lay.read_all()
    else:
        from ..tiers.ssd import SSDTier
        indices = SSDTier(lay)
    sampler = NeighborSampler(indptr, indices, cfg.fanouts, seed=cfg.seed)
    train = ds.split("train").astype(np.int64)
    per_epoch = -(-len(train) // cfg.batch_size)
    n = ds.num_nodes
    sbs, sample_s, first_sb = [], 0.0, None
    total = min(max_batches, 2 * per_epoch)
    try:
        with tqdm(total=total, desc="profile: sampling", unit="batch", leave=False,
                  disable=not progress) as bar:
            done = 0
            for epoch in (0, 1):
                seeds = seed_batches(train, cfg.batch_size, cfg.seed, epoch)
                for k in range(0, len(seeds), cfg.superbatch):
                    group = seeds[k:k + cfg.superbatch][: total - done]
                    if not group:
                        break
                    keys = [batch_key(epoch, k + i) for i in range(len(group))]
                    t0 = time.perf_counter()
                    sb = sampler.sample(group, keys)
                    sample_s += time.perf_counter() - t0
                    if first_sb is None:
                        first_sb = sb
                    sbs.append((epoch, sb.node_ids, sb.node_ptr))
                    done += len(group)
                    bar.update(len(group))
    finally:
        if not isinstance(indices, np.ndarray):
            indices.close()
    sampled = sum(len(p) - 1 for _, _, p in sbs)
    if sampled >= 2 * per_epoch:
        window, note = (per_epoch, 2 * per_epoch), "epoch 1 (warm: after a whole epoch 0)"
    elif sampled > per_epoch:
        window = (per_epoch, sampled)
        note = (f"first {sampled - per_epoch} batches of epoch 1 (warm), scaled to "
                f"{per_epoch} batches")
    else:
        window = (sampled // 2, sampled)
        note = (f"batches {sampled // 2}-{sampled - 1} of epoch 0 (second half of the sample, "
                f"cache partly warm), scaled to {per_epoch} batches")
    compute, books = measure_compute(ds, cfg, first_sb, indptr, compute_batches)
    return Profile(cfg, n, ds.layout("features").row_bytes, ds.layout("features").chunk_rows,
                   per_epoch, sbs, window, note, sample_s / max(sampled, 1), compute, books,
                   indices_on)


def measure_compute(ds: Dataset, cfg: TrainConfig, sb, indptr: np.ndarray,
                    batches: int) -> tuple[float, float]:
    """Mean seconds per batch of (a) forward + loss + backward + optimizer step of the
    configured model (CPU) and (b) the executor's per-batch bookkeeping (degrees from
    indptr, blocks, labels), on real sampled batches after one warm-up batch. The inputs
    are random rows of the feature shape: the arithmetic does not depend on the values."""
    import torch
    import torch.nn.functional as F

    from ..models import build_model
    from ..train.trainer import call_style
    classes = ds.num_classes or 2
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, ds.feature_dim, cfg.hidden, classes, len(cfg.fanouts),
                        cfg.dropout, cfg.heads)
    style = call_style(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    labels = np.zeros(ds.num_nodes, np.int64)
    times, books = [], []
    n = min(len(sb), batches + 1)
    for b in range(n):
        t0 = time.perf_counter()
        s = sb[b]
        n_id = torch.from_numpy(s.n_id)
        labels[n_id[:s.num_seeds]]
        deg = torch.from_numpy(indptr[s.n_id + 1] - indptr[s.n_id])
        blocks = [blk.with_degrees(deg) for blk in s.blocks]
        books.append(time.perf_counter() - t0)
        x = torch.randn(len(s.n_id), ds.feature_dim)
        y = torch.randint(0, classes, (s.num_seeds,))
        second = s.to_pyg()[1] if style == "pyg" else blocks
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(x, second)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        float(loss.detach())
        int((out.detach().argmax(1) == y).sum())
        times.append(time.perf_counter() - t0)
    skip = 1 if len(times) > 1 else 0
    return float(np.mean(times[skip:])), float(np.mean(books[skip:]))
