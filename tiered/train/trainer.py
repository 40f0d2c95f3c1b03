"""Trainer: node classification over a NodeLoader, with evaluation, checkpoints and metrics.

Any torch.nn.Module works as the model if its forward takes the batch as
`(x, blocks)` or PyG-style `(x, adjs)` (see tiered/batch.py) and returns one row
of class scores per seed. Resuming from a checkpoint continues at the batch
after the last one trained, with the model, optimizer, torch random state and
cache contents as they were, so it ends with the same model as a run that was
never interrupted.
"""
from __future__ import annotations

import inspect
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batch import Batch
from ..models import build_model
from ..plan import PolicyState
from ..units import format_size
from .config import TrainConfig
from .loader import NodeLoader

PYG_ARG_NAMES = ("adjs", "adj", "edge_indices", "edge_index", "edge_index_list")
EXPECTED_SIGNATURE = (
    "forward(x, blocks) -> Tensor[num_seeds, num_classes], where x has one row per input node "
    "(seeds first) and blocks[l] (outermost layer first) has edge_index (2, E) = (src local, "
    "dst local), num_src and num_dst, destinations being the first num_dst sources; or PyG "
    "style forward(x, adjs), adjs[l] = EdgeIndex(edge_index, e_id, size=(num_src, num_dst)) as "
    "PyG's NeighborSampler yields them. Name the second parameter `blocks` or `adjs`.")


class ModelInterfaceError(TypeError):
    """The model does not take tiered's batch; the message shows the expected signature."""


def call_style(model: nn.Module) -> str:
    """"pyg" when forward's second parameter is named like PyG's adjs, else "blocks"."""
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) < 2:
        raise ModelInterfaceError(f"{type(model).__name__}.forward takes {len(params)} positional "
                                  f"argument(s); tiered calls {EXPECTED_SIGNATURE}")
    return "pyg" if params[1].name in PYG_ARG_NAMES else "blocks"


@dataclass
class EpochResult:
    """One line of the metrics file."""

    epoch: int
    loss: float
    train_acc: float
    val_acc: float | None
    test_acc: float | None
    epoch_seconds: float
    hit_rate: float
    bytes_read: int
    MBps: float
    batches_per_s: float
    tiers: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    peak_bytes: dict = field(default_factory=dict)   # per tier, the manager's account so far

    def as_dict(self) -> dict:
        return dict(vars(self))


class Trainer:
    """Trains `model` (default: built from cfg.model) on the loader's training split.

    `losses` records every batch's loss in order (what the equality tests compare).
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module | None = None,
                 loader: NodeLoader | None = None):
        self.cfg = cfg.validate()
        torch.manual_seed(cfg.seed)
        self.loader = loader or NodeLoader(cfg)
        ds = self.loader.ds
        self.num_classes = ds.num_classes or int(self.loader.labels.max()) + 1
        self.device = torch.device(cfg.device)
        self.model = (model if model is not None else
                      build_model(cfg.model, ds.feature_dim, cfg.hidden, self.num_classes,
                                  len(cfg.fanouts), cfg.dropout, cfg.heads)).to(self.device)
        self.style = call_style(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
        self.losses: list[float] = []
        self.history: list[EpochResult] = []
        self.epoch, self.next_batch = 0, 0
        self.best_val, self.best_epoch, self.test_at_best = -math.inf, -1, None
        self._checked = False
        self.ckpt_dir = Path(cfg.checkpoint) if cfg.checkpoint else None
        if cfg.resume:
            self._load_checkpoint()

    # ---- the model call -----------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        """The model's scores for the batch's seeds (checks the interface on first use)."""
        second = batch.adjs if self.style == "pyg" else batch.blocks
        x = batch.x
        if self.cfg.normalize_features:
            x = x / x.abs().sum(1, keepdim=True).clamp(min=1e-12)
        if self._checked:
            return self.model(x, second)
        try:
            out = self.model(x, second)
        except TypeError as e:
            raise ModelInterfaceError(f"{type(self.model).__name__} does not accept tiered's "
                                      f"batch ({e}). Expected {EXPECTED_SIGNATURE}") from e
        want = (batch.batch_size, self.num_classes)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ModelInterfaceError(f"{type(self.model).__name__} returned {got}; expected a "
                                      f"tensor of shape {want} (seeds x classes). Expected "
                                      f"{EXPECTED_SIGNATURE}")
        self._checked = True
        return out

    # ---- epochs -------------------------------------------------------------------------
    def train_epoch(self, epoch: int, start: int = 0, progress=None) -> tuple[float, float, dict]:
        """One pass over the training split from batch `start`: (mean loss, accuracy, stats)."""
        self.model.train()
        ex = self.loader.executor
        ex.reset_stats()
        total = correct = 0
        loss_sum = 0.0
        compute = idle = 0.0
        it = self.loader.epoch(epoch, "train", start)
        t_wait = time.perf_counter()
        try:
            for batch in it:
                t0 = time.perf_counter()
                idle += t0 - t_wait
                self.optimizer.zero_grad(set_to_none=True)
                out = self.forward(batch)
                y = batch.y.long()
                loss = F.cross_entropy(out, y)
                loss.backward()
                self.optimizer.step()
                lv = float(loss.detach())
                self.losses.append(lv)
                n = batch.batch_size
                loss_sum += lv * n
                total += n
                correct += int((out.detach().argmax(1) == y).sum())
                self.epoch, self.next_batch = epoch, batch.index + 1
                compute += time.perf_counter() - t0
                if progress is not None:
                    st = ex.stats
                    el = max(time.perf_counter() - self._epoch_t0, 1e-9)
                    progress.set_postfix(loss=f"{lv:.4f}", hit=f"{st.level0_hits / max(st.rows, 1):.2f}",
                                         MBps=f"{sum(st.load_bytes) / el / 1e6:.0f}", refresh=False)
                    progress.update(1)
                if (self.cfg.checkpoint_every and self.ckpt_dir
                        and self.next_batch % self.cfg.checkpoint_every == 0):
                    self.save_checkpoint()
                t_wait = time.perf_counter()
        finally:
            it.close()
        stats = ex.stats.as_dict(ex.level_names)
        stats["seconds"].update(compute=compute, idle=idle)
        return loss_sum / max(total, 1), correct / max(total, 1), stats

    @torch.no_grad()
    def evaluate(self, split: str, epoch: int = 0) -> float:
        """Accuracy on a split with sampled neighbourhoods (cfg.eval_fanouts; -1 = all)."""
        self.model.eval()
        correct = total = 0
        it = self.loader.epoch(epoch, split)
        try:
            for batch in it:
                out = self.forward(batch)
                correct += int((out.argmax(1) == batch.y.long()).sum())
                total += batch.batch_size
        finally:
            it.close()
        return correct / max(total, 1)

    def fit(self) -> list[EpochResult]:
        """Train cfg.epochs epochs (continuing a resumed run), evaluating and checkpointing."""
        cfg = self.cfg
        splits = self.loader.splits
        bad = 0 if not self.history else self.history[-1].epoch - self.best_epoch
        epoch, start = self.epoch, self.next_batch
        if start >= self.loader.num_batches():
            epoch, start = epoch + 1, 0
        for epoch in range(epoch, cfg.epochs):
            if cfg.patience is not None and bad >= cfg.patience:
                break
            bar = _progress(cfg, epoch, self.loader.num_batches(), start)
            self._epoch_t0 = t0 = time.perf_counter()
            try:
                loss, acc, stats = self.train_epoch(epoch, start, bar)
            except KeyboardInterrupt:
                if self.ckpt_dir:
                    self.save_checkpoint()
                    print(f"\ninterrupted: checkpoint saved at epoch {self.epoch} batch "
                          f"{self.next_batch} in {self.ckpt_dir}; --resume continues from there")
                raise
            finally:
                if bar is not None:
                    bar.close()
            train_s = time.perf_counter() - t0
            start = 0
            val = test = None
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                val = self.evaluate("val", epoch) if "val" in splits else None
                test = self.evaluate("test", epoch) if "test" in splits else None
            res = EpochResult(epoch, loss, acc, val, test, time.perf_counter() - t0,
                              stats["hit_rate"], stats["bytes_read"],
                              stats["bytes_read"] / max(train_s, 1e-9) / 1e6,
                              stats["batches"] / max(train_s, 1e-9), stats["tiers"],
                              stats["seconds"],
                              {t: u["peak"] for t, u in self.loader.manager.usage().items()})
            self.history.append(res)
            improved = val is not None and val > self.best_val
            if improved:
                self.best_val, self.best_epoch, self.test_at_best = val, epoch, test
                bad = 0
                if self.ckpt_dir:
                    self._save(self.ckpt_dir / "best.pt", {"model": self.model.state_dict(),
                                                            "epoch": epoch, "val_acc": val,
                                                            "test_acc": test})
            elif val is not None:
                bad += 1
            self.epoch, self.next_batch = epoch, self.loader.num_batches()
            if self.ckpt_dir:
                self.save_checkpoint()
            if cfg.metrics:
                with open(cfg.metrics, "a") as f:
                    f.write(json.dumps(res.as_dict()) + "\n")
            if cfg.progress:
                print(_epoch_line(res))
        return self.history

    def summary(self) -> str:
        """What the run achieved and where the time and bytes went."""
        h = self.history
        if not h:
            return "no epochs trained"
        secs = sum(r.epoch_seconds for r in h)
        split = {k: sum(r.seconds.get(k, 0.0) for r in h) for k in h[-1].seconds}
        lines = [f"trained {len(h)} epoch(s) in {secs:.1f} s ({secs / len(h):.2f} s/epoch); "
                 f"{self.loader.placement.describe()}",
                 f"final loss {h[-1].loss:.4f}, train acc {h[-1].train_acc:.4f}"]
        if self.best_epoch >= 0:
            t = "n/a" if self.test_at_best is None else f"{self.test_at_best:.4f}"
            lines.append(f"best val acc {self.best_val:.4f} at epoch {self.best_epoch}; "
                         f"test acc there {t}")
        if h[-1].test_acc is not None:
            lines.append(f"test acc (last epoch) {h[-1].test_acc:.4f}")
        lines.append(f"DRAM cache hit rate {np.mean([r.hit_rate for r in h]):.3f}, read "
                     f"{format_size(sum(r.bytes_read for r in h))} from the tiers")
        lines.append("time split (s): " + ", ".join(f"{k} {v:.2f}" for k, v in split.items()))
        lines.append("memory by tier (the manager's account):\n" + self.loader.manager.report())
        return "\n".join(lines)

    # ---- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write DIR/last.pt: everything needed to continue after the last trained batch."""
        assert self.ckpt_dir is not None
        state = self.loader.policy_state(self.epoch, self.next_batch)
        path = self.ckpt_dir / "last.pt"
        self._save(path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(), "epoch": self.epoch, "next_batch": self.next_batch,
            "policy_state": state.to_dict(),
            "cache_policy": self.loader.policy.name, "cache_rows": self.loader.placement.cache_rows,
            "losses": self.losses, "history": [r.as_dict() for r in self.history],
            "best": (self.best_val, self.best_epoch, self.test_at_best),
            "config": self.cfg.to_dict()})
        return path

    def _save(self, path: Path, obj: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(obj, tmp)
        tmp.replace(path)

    def _load_checkpoint(self) -> None:
        path = self.ckpt_dir / "last.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")
        ck = torch.load(path, weights_only=False)
        for key in ("cache_policy", "cache_rows"):
            here = self.loader.policy.name if key == "cache_policy" else self.loader.placement.cache_rows
            if ck[key] != here:
                raise ValueError(f"{path}: checkpoint was taken with {key} = {ck[key]!r}, this "
                                 f"run has {here!r}; resume with the same settings")
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        self.epoch, self.next_batch = ck["epoch"], ck["next_batch"]
        self.losses = list(ck["losses"])
        self.history = [EpochResult(**r) for r in ck["history"]]
        self.best_val, self.best_epoch, self.test_at_best = ck["best"]
        epoch, start = self.epoch, self.next_batch
        if start >= self.loader.num_batches():
            epoch, start = epoch + 1, 0
        self.loader.resume_at(epoch, start, PolicyState.from_dict(ck["policy_state"]))


def _progress(cfg: TrainConfig, epoch: int, total: int, start: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=start, desc=f"epoch {epoch}", unit="batch", leave=False,
                dynamic_ncols=True)


def _epoch_line(r: EpochResult) -> str:
    acc = lambda v: "  n/a " if v is None else f"{v:.4f}"  # noqa: E731
    return (f"epoch {r.epoch:3d}  loss {r.loss:.4f}  train {r.train_acc:.4f}  val {acc(r.val_acc)}  "
            f"test {acc(r.test_acc)}  {r.epoch_seconds:.2f} s  {r.batches_per_s:.1f} batch/s  "
            f"hit {r.hit_rate:.3f}  {r.MBps:.1f} MB/s")
