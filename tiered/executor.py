"""The executor: replays the inspector's plan into batches at the speed of the tiers.

Per batch b of a superbatch (see tiered/plan/plan.py for the contract):

1. read the batch's loads into a staging buffer, one sorted run per level
   (cache levels 1..K-1 by slot, the backing tier by node id: page-coalesced,
   many reads in flight inside the SSD tier);
2. assemble the feature rows in n_id order with a parallel numba gather from the
   level-0 slab (the DRAM cache) and the staging buffer;
3. apply the plan's moves (copy assembled rows into cache slots, demote rows
   between levels), after assembly, so no row a batch reads is overwritten first;
4. hand the batch to the consumer: on CPU a torch tensor over the assembled
   buffer (no copy); with CUDA a non_blocking copy on a side stream, or a
   zero-copy gather the GPU runs straight from the pinned slab.

A loader thread does 1-4 for batch i+1 while the consumer trains on batch i; the
inspector samples and plans superbatch k+1 in its own thread. The queue between
loader and consumer is bounded (`prefetch`), assembled buffers are a ring of
`prefetch + 2`, and closing the iterator (normal end, error, Ctrl-C) stops and
joins the loader thread.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .batch import Batch
from .background import Background
from .gather import as_byte_rows, assemble_rows, copy_rows
from .inspector import Superbatch
from .plan.plan import CacheState
from .tiers.base import Tier


_RESTORE_ROWS = 1 << 16         # rows read per step when refilling the caches on resume


@dataclass
class ExecutorStats:
    """Traffic and time of the batches produced since the last reset (one epoch, usually)."""

    batches: int = 0
    rows: int = 0                           # batch rows (sum of n_id lengths)
    level0_hits: int = 0                    # rows served by the DRAM slab
    loads: list[int] = field(default_factory=list)       # rows read per level 1..K
    load_bytes: list[int] = field(default_factory=list)  # bytes moved per level (pages on SSD)
    seconds: dict = field(default_factory=lambda: dict.fromkeys(
        ("sample", "plan", "load", "assemble", "move", "transfer"), 0.0))

    def as_dict(self, level_names: Sequence[str]) -> dict:
        """Hit rate and traffic per tier (DRAM cache first), plus the time split."""
        rows = max(self.rows, 1)
        tiers = {"dram_cache": {"rows": self.level0_hits, "hit_rate": self.level0_hits / rows,
                                "bytes_read": 0}}
        for name, n, nb in zip(level_names, self.loads, self.load_bytes):
            tiers[name] = {"rows": n, "hit_rate": n / rows, "bytes_read": nb}
        return {"batches": self.batches, "rows": self.rows, "hit_rate": self.level0_hits / rows,
                "bytes_read": int(sum(self.load_bytes)), "tiers": tiers,
                "seconds": dict(self.seconds)}


class _Ring:
    """prefetch + 2 assembly buffers, grown on demand (64-byte aligned torch storage)."""

    def __init__(self, size: int, row_shape: tuple, dtype: torch.dtype, pin: bool):
        self.bufs: list[torch.Tensor | None] = [None] * size
        self.events: list = [None] * size
        self.row_shape, self.dtype, self.pin = row_shape, dtype, pin
        self.i = 0

    def take(self, rows: int) -> tuple[int, torch.Tensor]:
        i = self.i
        self.i = (i + 1) % len(self.bufs)
        if self.events[i] is not None:          # a CUDA copy out of this buffer may be in flight
            self.events[i].synchronize()
            self.events[i] = None
        buf = self.bufs[i]
        if buf is None or buf.shape[0] < rows:
            cap = max(rows, 1 if buf is None else int(buf.shape[0] * 1.25))
            buf = torch.empty((cap,) + self.row_shape, dtype=self.dtype, pin_memory=self.pin)
            self.bufs[i] = buf
        return i, buf[:rows]


class Executor:
    """Replays plans over a K-level cache: level 0 is this executor's DRAM slab.

    `backing` holds every row (the level-K tier); `cache_tiers` are levels
    1..K-1 (e.g. a PMem cache), addressed by slot; `capacity0` is the number of
    slab rows. `labels` (one per node, DRAM) gives each batch's seed labels;
    with `indptr` every block carries its sources' in-degrees (GCN's normalisation).
    `device` "cpu" or "cuda[:i]"; `transfer` "copy" (pinned staging, side
    stream) or "zero-copy" (GPU gathers from the pinned slab) on CUDA.
    """

    def __init__(self, backing: Tier, capacity0: int, labels: np.ndarray | None = None, *,
                 indptr: np.ndarray | None = None, cache_tiers: Sequence[Tier] = (),
                 slab: np.ndarray | None = None, device: str | torch.device = "cpu",
                 transfer: str = "copy", prefetch: int = 2):
        self.backing = backing
        self.indptr = indptr
        self.cache_tiers = list(cache_tiers)
        self.levels = self.cache_tiers + [backing]          # index k-1 = level k
        self.row_shape, self.np_dtype = backing.row_shape, backing.dtype
        self.torch_dtype = torch.from_numpy(np.empty(0, backing.dtype)).dtype
        self.device = torch.device(device)
        if transfer not in ("copy", "zero-copy"):
            raise ValueError(f"transfer must be 'copy' or 'zero-copy', got {transfer!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for but torch.cuda.is_available() is False")
        self.transfer = transfer if self.device.type == "cuda" else "copy"
        pin = self.device.type == "cuda"
        self.capacity0 = int(capacity0)
        if slab is None:
            self._slab_t = torch.empty((self.capacity0,) + self.row_shape, dtype=self.torch_dtype,
                                       pin_memory=pin)
        else:
            want = (self.capacity0,) + self.row_shape
            if slab.shape != want or slab.dtype != self.np_dtype or not slab.flags.c_contiguous:
                raise ValueError(f"slab must be a C-contiguous {want} {self.np_dtype} array, got "
                                 f"{slab.shape} {slab.dtype}")
            self._slab_t = torch.from_numpy(slab)
            if pin and slab.nbytes:         # UNVERIFIED without a GPU: page-lock it in place
                torch.cuda.cudart().cudaHostRegister(slab.ctypes.data, slab.nbytes, 0)
        self.slab = self._slab_t.numpy()
        self.labels = None if labels is None else torch.from_numpy(np.asarray(labels))
        self.prefetch = max(1, int(prefetch))
        self._ring = _Ring(self.prefetch + 2, self.row_shape, self.torch_dtype, pin)
        self._pin = pin
        self._staging = self._host_rows(0)
        if pin:
            self._stream = torch.cuda.Stream(self.device)
        self.stats = ExecutorStats(loads=[0] * len(self.levels), load_bytes=[0] * len(self.levels))

    @property
    def level_names(self) -> list[str]:
        return [t.name for t in self.levels]

    def reset_stats(self) -> ExecutorStats:
        """Return the counters so far and start new ones."""
        old = self.stats
        self.stats = ExecutorStats(loads=[0] * len(self.levels), load_bytes=[0] * len(self.levels))
        return old

    def _host_rows(self, n: int) -> np.ndarray:
        """A row buffer in torch-allocated (64-byte aligned; pinned with CUDA) memory."""
        return torch.empty((n,) + self.row_shape, dtype=self.torch_dtype, pin_memory=self._pin).numpy()

    # ---- cache state -------------------------------------------------------------------
    def restore(self, state: CacheState) -> None:
        """Make the caches hold `state` (on resume): read every cached row from the backing tier."""
        for k in range(len(self.levels)):
            sel = np.flatnonzero(state.level == k)
            if not sel.size:
                continue
            order = sel[np.argsort(state.node[sel], kind="stable")]
            for a in range(0, len(order), _RESTORE_ROWS):        # bounded extra memory
                part = order[a:a + _RESTORE_ROWS]
                ids = state.node[part].astype(np.int64)
                slots = state.slot[part].astype(np.int64)
                rows = self.backing.read_rows(ids)
                if k == 0:
                    copy_rows(as_byte_rows(self.slab), slots, as_byte_rows(rows),
                                  np.arange(len(ids), dtype=np.int64))
                else:
                    self.cache_tiers[k - 1].write_rows(slots, rows)

    # ---- one batch -----------------------------------------------------------------------
    def _read_loads(self, bp) -> np.ndarray:
        n = len(bp.load_ids)
        if self._staging.shape[0] < n:
            self._staging = self._host_rows(max(n, int(self._staging.shape[0] * 1.25)))
        staging = self._staging[:n]
        if n == 0:
            return staging
        t0 = time.perf_counter()
        bounds = np.searchsorted(bp.load_level, np.arange(1, len(self.levels) + 2))
        for k in range(1, len(self.levels) + 1):
            a, z = int(bounds[k - 1]), int(bounds[k])
            if a == z:
                continue
            tier = self.levels[k - 1]
            before = tier.stats.bytes_read
            keys = bp.load_ids[a:z] if k == len(self.levels) else bp.load_slot[a:z]
            tier.read_rows(keys.astype(np.int64), staging[a:z])
            self.stats.loads[k - 1] += z - a
            self.stats.load_bytes[k - 1] += tier.stats.bytes_read - before
        self.stats.seconds["load"] += time.perf_counter() - t0
        return staging

    def _apply_moves(self, bp, x: np.ndarray) -> None:
        """Copy rows into their new cache slots; every source is read before any write."""
        if not len(bp.move_ids):
            return
        t0 = time.perf_counter()
        from_x = bp.move_src_level < 0
        if from_x.all():
            src = x
            rows = bp.move_src.astype(np.int64)
        else:
            src = np.empty((len(bp.move_ids),) + self.row_shape, self.np_dtype)
            rows = np.arange(len(bp.move_ids), dtype=np.int64)
            for lv in np.unique(bp.move_src_level):
                sel = np.flatnonzero(bp.move_src_level == lv)
                slots = bp.move_src[sel].astype(np.int64)
                if lv < 0:
                    src[sel] = x[slots]
                elif lv == 0:
                    src[sel] = self.slab[slots]
                else:
                    self.cache_tiers[lv - 1].read_rows(slots, src[sel])
        for lv in np.unique(bp.move_level):
            sel = np.flatnonzero(bp.move_level == lv)
            slots = bp.move_slot[sel].astype(np.int64)
            if lv == 0:
                copy_rows(as_byte_rows(self.slab), slots, as_byte_rows(src), rows[sel])
            else:
                self.cache_tiers[lv - 1].write_rows(slots, np.ascontiguousarray(src[rows[sel]]))
        self.stats.seconds["move"] += time.perf_counter() - t0

    def _read_direct(self, bp) -> tuple[int, torch.Tensor]:
        t0 = time.perf_counter()
        slot, xt = self._ring.take(len(bp.row_ids))
        before = self.backing.stats.bytes_read
        self.backing.read_rows(bp.row_ids.astype(np.int64), xt.numpy())
        self.stats.loads[-1] += len(bp.row_ids)
        self.stats.load_bytes[-1] += self.backing.stats.bytes_read - before
        self.stats.seconds["load"] += time.perf_counter() - t0
        return slot, xt

    def _assemble_cpu(self, bp, staging) -> tuple[int, torch.Tensor]:
        t0 = time.perf_counter()
        slot, xt = self._ring.take(len(bp.row_loc))
        assemble_rows(as_byte_rows(self.slab), as_byte_rows(staging), bp.row_loc,
                  as_byte_rows(xt.numpy()))
        self.stats.seconds["assemble"] += time.perf_counter() - t0
        return slot, xt

    def _to_device(self, slot: int | None, xt: torch.Tensor, y, blocks):
        """UNVERIFIED without a GPU: host tensors -> device on a side stream, with an event
        the consumer waits on; x is already there in zero-copy mode (slot None)."""
        t0 = time.perf_counter()
        with torch.cuda.stream(self._stream):
            if not xt.is_cuda:
                xt = xt.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True) if y is not None else None
            blocks = [blk.to(self.device, non_blocking=True) for blk in blocks]
            ev = torch.cuda.Event()
            ev.record(self._stream)
        if slot is not None:
            self._ring.events[slot] = ev
        self.stats.seconds["transfer"] += time.perf_counter() - t0
        return xt, y, blocks, ev

    def _zero_copy_gather(self, bp, staging) -> torch.Tensor:
        """UNVERIFIED without a GPU: the GPU gathers rows straight from pinned host memory.

        The slab and staging buffer are page-locked; under unified addressing their
        host pointers are valid device pointers, so torch's index_select kernel reads
        them over PCIe (PyTorch-Direct's zero-copy access) with no CPU gather.
        """
        t0 = time.perf_counter()
        loc = torch.from_numpy(bp.row_loc.astype(np.int64))
        with torch.cuda.stream(self._stream):
            loc_d = loc.pin_memory().to(self.device, non_blocking=True)
            hit = loc_d >= 0
            x = torch.empty((len(loc),) + self.row_shape, dtype=self.torch_dtype, device=self.device)
            x[hit] = _host_view_on_device(self._slab_t, self.device).index_select(0, loc_d[hit])
            if len(staging):
                st_d = _host_view_on_device(torch.from_numpy(staging), self.device)
                x[~hit] = st_d.index_select(0, -loc_d[~hit] - 1)
            self._stream.synchronize()       # moves may overwrite slots this gather reads
        self.stats.seconds["transfer"] += time.perf_counter() - t0
        return x

    def _host_move_rows(self, bp, staging):
        """For zero-copy: the rows that moves copy out of the batch, assembled on the host."""
        from_x = np.flatnonzero(bp.move_src_level < 0)
        rows = np.empty((len(from_x),) + self.row_shape, self.np_dtype)
        assemble_rows(as_byte_rows(self.slab), as_byte_rows(staging),
                  bp.row_loc[bp.move_src[from_x].astype(np.int64)], as_byte_rows(rows))
        move_src = bp.move_src.copy()
        move_src[from_x] = np.arange(len(from_x), dtype=move_src.dtype)
        return rows, replace(bp, move_src=move_src)

    # ---- the pipeline ----------------------------------------------------------------------
    def _produce(self, sb: Superbatch, b: int, index: int) -> Batch:
        """Replay batch b of a superbatch: read its loads, assemble it, apply its moves."""
        bp = sb.plan.batch(b)
        if not sb.plan.capacities.any():        # no cache: read rows in n_id order into x
            slot, xt = self._read_direct(bp)
        elif self.transfer == "zero-copy":
            staging = self._read_loads(bp)
            xt, slot = self._zero_copy_gather(bp, staging), None
            moved, bp_moved = self._host_move_rows(bp, staging)
            self._apply_moves(bp_moved, moved)
        else:
            staging = self._read_loads(bp)
            slot, xt = self._assemble_cpu(bp, staging)
            self._apply_moves(bp, xt.numpy())
        sampled = sb.batches[b]
        n_id = torch.from_numpy(sampled.n_id)
        y = self.labels[n_id[:sampled.num_seeds]] if self.labels is not None else None
        blocks = sampled.blocks
        if self.indptr is not None:
            deg = torch.from_numpy(self.indptr[sampled.n_id + 1] - self.indptr[sampled.n_id])
            blocks = [blk.with_degrees(deg) for blk in blocks]
        ev = None
        if self.device.type == "cuda":
            xt, y, blocks, ev = self._to_device(slot, xt, y, blocks)
        st = self.stats
        st.batches += 1
        st.rows += len(bp.row_loc)
        st.level0_hits += len(bp.row_loc) - len(bp.load_ids)
        batch = Batch(xt, y, blocks, n_id, sampled.num_seeds, index=index)
        batch.ready = ev
        return batch

    def run(self, superbatches: Iterable[Superbatch], first_index: int = 0) -> Iterator[Batch]:
        """Batches of every superbatch in order, numbered from `first_index` (resuming at
        batch k: restore() the policy state's cache, inspect with first_batch=k, first_index=k).

        Closing the returned generator stops the loader thread and closes `superbatches`
        when it has a close() method.
        """
        produced = Background(self._batches(superbatches, first_index), self.prefetch,
                              "tiered-executor", upstream=superbatches)
        try:
            for item in produced:
                if item.ready is not None:
                    stream = torch.cuda.current_stream(self.device)
                    stream.wait_event(item.ready)
                    for t in (item.x, item.y):
                        if t is not None and t.is_cuda:
                            t.record_stream(stream)
                yield item
        finally:
            produced.close()

    def _batches(self, superbatches: Iterable[Superbatch], first_index: int) -> Iterator[Batch]:
        """The batches of every superbatch, produced in order (run()'s producer thread)."""
        index = first_index
        for sb in superbatches:
            self.stats.seconds["sample"] += sb.sample_seconds
            self.stats.seconds["plan"] += sb.plan_seconds
            for b in range(sb.plan.num_batches):
                yield self._produce(sb, b, index)
                index += 1


class _HostMemoryOnDevice:
    """__cuda_array_interface__ over a pinned host tensor (valid on the device under UVA)."""

    def __init__(self, t: torch.Tensor):
        self.t = t
        typestr = np.dtype(t.numpy().dtype).str
        self.__cuda_array_interface__ = {"shape": tuple(t.shape), "typestr": typestr,
                                         "data": (t.data_ptr(), False), "version": 3,
                                         "strides": None}


def _host_view_on_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """UNVERIFIED without a GPU: a CUDA tensor aliasing pinned host memory (no copy)."""
    return torch.as_tensor(_HostMemoryOnDevice(t), device=device)
