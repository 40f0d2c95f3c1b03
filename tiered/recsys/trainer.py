"""LinkTrainer: BPR training of a recommender whose embedding table lives on the tiers.

Per epoch the inspector (in a background thread, one superbatch ahead) shuffles
the train interactions into batches, samples each batch's neighbourhood from
its users, positive items and negative items, and plans the table's DRAM cache
for the superbatch. Per batch the table gathers the rows the plan names (slab
hits and sorted backing-tier loads), the model maps them to seed embeddings,
BPR's gradient flows back to the rows, the row optimizer updates them in place
and the table writes them back as the plan says. At the end of each epoch the
table is flushed and (every `eval_every` epochs) recall@K / ndcg@K are measured
with full ranking over all items.

Everything that decides the numbers (batches, negatives, initial rows, model
arithmetic) depends only on the seed, not on where the rows live or on the
cache policy: a table on the SSD with a small cache ends bit-identical to the
all-in-DRAM run (tests/test_recsys_train.py).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..background import Background
from ..dataset import open_dataset
from ..inspector import Inspector, Superbatch
from ..plan import make_policy
from ..sampling import NeighborSampler
from ..tiers.dram import DRAMTier
from ..units import format_size
from .config import LinkConfig
from .embedding import EmbeddingTable
from .graph import Graph
from .loss import PairBatch, bpr_loss
from .metrics import InteractionIndex, RankingMetrics, evaluate_ranking
from .models import build_link_model
from .optim import make_row_optimizer
from .storage import close_table, create_table, normal_rows

TABLE_NAME = "embeddings"


@dataclass
class LinkEpoch:
    """One epoch's line of the learning curve (and of the metrics file)."""

    epoch: int
    loss: float
    bpr: float
    epoch_seconds: float            # training time of this epoch (sampling waits included)
    train_seconds: float            # cumulative training time
    wall_seconds: float             # since fit() started, evaluations included
    recall: float | None
    ndcg: float | None
    lr: float = 0.0
    table: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(vars(self))


class LinkTrainer:
    """Trains `model` (default: built from cfg.model) with BPR on a link dataset.

    A custom model is any nn.Module whose forward takes (x, blocks) and returns
    one embedding per seed (see tiered/recsys/models.py); `losses` records every
    batch's loss.
    """

    def __init__(self, cfg: LinkConfig, model: nn.Module | None = None):
        self.cfg = cfg.validate()
        torch.manual_seed(cfg.seed)
        ds = self.ds = open_dataset(cfg.dataset)
        if ds.task != "link":
            raise ValueError(f"{ds.path}: task is {ds.task!r}; link prediction needs a link dataset "
                             f"(tiered-convert lightgcn / synthetic-link)")
        if "train" not in ds.splits:
            raise ValueError(f"{ds.path}: dataset has no 'train' interactions (has {ds.splits})")
        self.num_users, self.num_items, self.num_nodes = ds.num_users, ds.num_items, ds.num_nodes
        self.graph = Graph(ds.load("indptr"), ds.load("indices"), self.num_users, self.num_items)
        self.degree = torch.from_numpy(self.graph.degree.astype(np.int64))
        train = ds.load("train_interactions").astype(np.int64)
        self.train_edges = np.stack([train[:, 0], train[:, 1] + self.num_users], axis=1)
        self.train_index = InteractionIndex(train, self.num_users, self.num_items,
                                            f"{ds.path}/train_interactions")
        self.eval_split = "test" if "test" in ds.splits else ("val" if "val" in ds.splits else None)
        self.eval_index = None if self.eval_split is None else InteractionIndex(
            ds.load(f"{self.eval_split}_interactions"), self.num_users, self.num_items,
            f"{ds.path}/{self.eval_split}_interactions")
        self.fanouts = cfg.fanouts or [-1] * cfg.layers
        self.sampler = NeighborSampler(self.graph.indptr, self.graph.indices, self.fanouts,
                                       seed=cfg.seed)
        self.features = None
        in_dim = cfg.dim
        if cfg.use_features:
            if not ds.feature_dim:
                raise ValueError(f"{ds.path}: use_features is set but the dataset has no features")
            self.features = DRAMTier.from_layout(ds.layout("features"), pin=False)
            in_dim += ds.feature_dim
        self.model = model if model is not None else build_link_model(cfg.model, in_dim, cfg.dim,
                                                                      cfg.layers)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.dense_optimizer = torch.optim.Adam(params, lr=cfg.lr) if params else None
        optimizer = make_row_optimizer(cfg.optimizer, cfg.lr)
        row_shape = (1 + optimizer.state_rows, cfg.dim)
        row_bytes = 4 * row_shape[0] * row_shape[1]
        capacity = 0 if cfg.embeddings_on == "dram" else cfg.cache_rows(self.num_nodes, row_bytes)
        self._table_dir = None
        if cfg.embeddings_on == "ssd":
            base = Path(cfg.table_dir) if cfg.table_dir else Path(ds.path).absolute().parent
            base.mkdir(parents=True, exist_ok=True)
            self._table_dir = Path(tempfile.mkdtemp(prefix=f"{Path(ds.path).name}-table-", dir=base))
        init = normal_rows(cfg.seed, row_shape, cfg.init_std, optimizer.initial_state())
        try:
            tier = create_table(cfg.embeddings_on, TABLE_NAME, self.num_nodes, row_shape, init,
                                directory=self._table_dir, pmem=cfg.pmem)
        except BaseException:
            if self._table_dir is not None:
                shutil.rmtree(self._table_dir, ignore_errors=True)
            raise
        self.table = EmbeddingTable(tier, optimizer, capacity)
        policy_name = cfg.cache if capacity else "none"
        score = self.graph.degree if policy_name == "static" else None
        self.policy = make_policy(policy_name, capacity, self.num_nodes, score)
        self.inspector = Inspector(self.sampler, self.policy, cfg.batch_size, cfg.superbatch,
                                   seed=cfg.seed)
        self.losses: list[float] = []
        self.history: list[LinkEpoch] = []
        self.train_seconds = 0.0

    # ---- training ----------------------------------------------------------------------
    def train_batch(self, sb: Superbatch, b: int) -> tuple[float, float]:
        """Forward, backward and update of batch b of a superbatch: (loss, bpr)."""
        bp = sb.plan.batch(b)
        batch = sb.batches[b]
        rows = self.table.gather(bp)
        x = torch.from_numpy(np.ascontiguousarray(rows[:, 0, :])).requires_grad_()
        n_id = torch.from_numpy(batch.n_id)
        inp = x
        if self.features is not None:
            inp = torch.cat([x, torch.from_numpy(self.features.read_rows(batch.n_id))], dim=1)
        deg = self.degree.index_select(0, n_id)
        blocks = [blk.with_degrees(deg) for blk in batch.blocks]
        z = self.model(inp, blocks)
        if z.dim() != 2 or z.shape[0] != blocks[-1].num_dst:
            raise ValueError(f"{type(self.model).__name__} returned shape {tuple(z.shape)}; a link "
                             f"model returns one embedding per seed: ({blocks[-1].num_dst}, dim)")
        pairs = PairBatch.from_label_index(torch.from_numpy(batch.edge_label_index),
                                           int(sb.batches.num_pos[b]))
        loss, bpr, _ = bpr_loss(z, x, pairs, self.cfg.reg)
        if self.dense_optimizer is not None:
            self.dense_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.dense_optimizer is not None:
            self.dense_optimizer.step()
        self.table.update(bp, rows, x.grad.numpy())
        return float(loss.detach()), float(bpr.detach())

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the train interactions; returns mean losses, time and table traffic."""
        self.model.train()
        self.table.reset_stats()
        lr = self.cfg.lr * self.cfg.lr_decay ** epoch
        self.table.optimizer.lr = lr
        if self.dense_optimizer is not None:
            for group in self.dense_optimizer.param_groups:
                group["lr"] = lr
        t0 = time.perf_counter()
        waits = compute = 0.0
        loss_sum = bpr_sum = 0.0
        n = 0
        sbs = Background(self.inspector.edge_epoch(self.train_edges, epoch, num_neg=self.cfg.num_neg,
                                                   neg_range=(self.num_users, self.num_nodes)),
                         1, "tiered-link-inspector")
        bar = self._bar(epoch)
        t_wait = time.perf_counter()
        try:
            for sb in sbs:
                waits += time.perf_counter() - t_wait
                for b in range(len(sb)):
                    tb = time.perf_counter()
                    lv, bv = self.train_batch(sb, b)
                    compute += time.perf_counter() - tb
                    self.losses.append(lv)
                    loss_sum, bpr_sum, n = loss_sum + lv, bpr_sum + bv, n + 1
                    if bar is not None:
                        bar.set_postfix(loss=f"{lv:.4f}", hit=f"{self.table.stats.as_dict()['hit_rate']:.2f}",
                                        refresh=False)
                        bar.update(1)
                t_wait = time.perf_counter()
        finally:
            sbs.close()
            if bar is not None:
                bar.close()
        tf = time.perf_counter()
        flushed = self.table.flush()
        seconds = time.perf_counter() - t0
        st = self.table.stats.as_dict()
        st["flushed"] = flushed
        split = {"inspector_wait": waits, "batches": compute, "flush": time.perf_counter() - tf,
                 "table_read": st["read_seconds"], "table_write": st["write_seconds"]}
        return {"loss": loss_sum / max(n, 1), "bpr": bpr_sum / max(n, 1), "seconds": seconds,
                "lr": lr, "table": st, "split": split}

    # ---- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def embed_all(self) -> torch.Tensor:
        """Final embeddings of every node: the model's full_graph, or sampled inference."""
        self.model.eval()
        x = torch.from_numpy(self.table.params())
        if self.features is not None:
            x = torch.cat([x, torch.from_numpy(self.features.read_rows(
                np.arange(self.num_nodes, dtype=np.int64)))], dim=1)
        if hasattr(self.model, "full_graph"):
            return self.model.full_graph(x, self.graph)
        parts = []
        bs = self.cfg.eval_batch_size
        for k, a in enumerate(range(0, self.num_nodes, bs)):
            seeds = np.arange(a, min(self.num_nodes, a + bs), dtype=np.int64)
            batch = self.sampler.sample_batch(seeds, key=k)
            n_id = torch.from_numpy(batch.n_id)
            deg = self.degree.index_select(0, n_id)
            parts.append(self.model(x.index_select(0, n_id),
                                    [blk.with_degrees(deg) for blk in batch.blocks]))
        return torch.cat(parts)

    def evaluate(self) -> RankingMetrics:
        """recall@K and ndcg@K on the evaluation split (test, else val)."""
        if self.eval_index is None:
            raise ValueError(f"{self.ds.path}: no test or val interactions to evaluate on")
        z = self.embed_all()
        return evaluate_ranking(z[:self.num_users], z[self.num_users:], self.train_index,
                                self.eval_index, self.cfg.topk, self.cfg.max_scores)

    def fit(self) -> list[LinkEpoch]:
        """Train cfg.epochs epochs, evaluating every cfg.eval_every epochs and after the last;
        stop early once cfg.time_limit training seconds have passed (after evaluating) or an
        evaluation reaches cfg.target_recall."""
        cfg = self.cfg
        t_fit = time.perf_counter()
        start = len(self.history)
        for epoch in range(start, cfg.epochs):
            r = self.train_epoch(epoch)
            self.train_seconds += r["seconds"]
            last = epoch + 1 == cfg.epochs or (cfg.time_limit is not None
                                               and self.train_seconds >= cfg.time_limit)
            m = None
            if self.eval_index is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
                m = self.evaluate()
            rec = LinkEpoch(epoch, r["loss"], r["bpr"], r["seconds"], self.train_seconds,
                            time.perf_counter() - t_fit, None if m is None else m.recall,
                            None if m is None else m.ndcg, r["lr"], r["table"], r["split"])
            self.history.append(rec)
            if cfg.metrics:
                with open(cfg.metrics, "a") as f:
                    f.write(json.dumps(rec.as_dict()) + "\n")
            if cfg.progress:
                print(epoch_line(rec, cfg.topk), flush=True)
            if last or (m is not None and cfg.target_recall is not None
                        and m.recall >= cfg.target_recall):
                break
        return self.history

    def summary(self) -> str:
        """What the run reached, and where the time and the table's bytes went."""
        h = self.history
        if not h:
            return "no epochs trained"
        k = self.cfg.topk
        evals = [r for r in h if r.recall is not None]
        lines = [f"trained {len(h)} epoch(s) in {self.train_seconds:.1f} s of training "
                 f"({self.train_seconds / len(h):.2f} s/epoch); table on {self.cfg.embeddings_on}, "
                 f"DRAM cache {self.table.capacity} of {self.num_nodes} rows ({self.policy.name})"]
        if evals:
            best = max(evals, key=lambda r: r.recall)
            lines.append(f"recall@{k} {evals[-1].recall:.4f}, ndcg@{k} {evals[-1].ndcg:.4f} after "
                         f"epoch {evals[-1].epoch}; best recall@{k} {best.recall:.4f} at epoch "
                         f"{best.epoch}")
        rd = sum(r.table["bytes_read"] for r in h)
        wr = sum(r.table["bytes_written"] for r in h)
        lines.append(f"table: hit rate {np.mean([r.table['hit_rate'] for r in h]):.3f}, read "
                     f"{format_size(rd)}, wrote {format_size(wr)}")
        return "\n".join(lines)

    def close(self) -> None:
        """Close the table (removing its SSD file) and release the tiers. Idempotent."""
        if getattr(self, "table", None) is not None:
            close_table(self.table.backing)
            self.table = None
        if self._table_dir is not None:
            shutil.rmtree(self._table_dir, ignore_errors=True)
            self._table_dir = None

    def __enter__(self) -> "LinkTrainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _bar(self, epoch: int):
        if not self.cfg.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=self.inspector.num_batches(len(self.train_edges)), desc=f"epoch {epoch}",
                    unit="batch", leave=False, dynamic_ncols=True)


def epoch_line(r: LinkEpoch, k: int = 20) -> str:
    """One line per epoch: loss, metrics, time, table traffic."""
    m = "" if r.recall is None else f"  recall@{k} {r.recall:.4f}  ndcg@{k} {r.ndcg:.4f}"
    t = r.table
    return (f"epoch {r.epoch:4d}  loss {r.loss:.4f}{m}  {r.epoch_seconds:.1f} s  "
            f"(train {r.train_seconds:.0f} s)  hit {t.get('hit_rate', 0):.3f}  read "
            f"{t.get('bytes_read', 0) / 1e6:.0f} MB  wrote {t.get('bytes_written', 0) / 1e6:.0f} MB")
