"""`synthetic`: power-law graphs with planted classes, and user-item graphs, generated in blocks.

Node task (see docs/convert.md for the argument):
- Edges are R-MAT draws (Chakrabarti et al. 2004; Graph500 a,b,c = 0.57,0.19,0.19)
  over 2^scale positions, scaled down to [0, n). Position v has class v mod C.
- Homophily: with probability h an edge's destination is moved within its block
  of C consecutive positions to the source's class (d -> d - d mod C + s mod C),
  which keeps the block's degree, so the power law survives.
- Features: x_v = mu_class + noise, class means with N(0,1) entries and noise
  of standard deviation `noise` * sqrt(dim/2) per coordinate, so two class means
  sit 1/noise noise deviations from their midpoint whatever the dimension.
- Node ids are a seeded Feistel permutation of positions, scattering hubs and
  classes over the id range as in real data.
Every random value is a hash of (seed, counter), so the output depends only
on the seed: not on block sizes or thread counts.

Link task: the same R-MAT over users x items, with G planted groups (user and
item positions mod G) and homophily h; duplicate pairs merged; each distinct
pair goes to test/val/train by a hash of the pair.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numba
import numpy as np

from ..format import FEATURE_DTYPES
from .build import (SplitSpec, build_node_dataset, csc_bytes, edge_scratch_bytes,
                    finish_link_dataset)
from .csc import EdgeCollector, working_budget
from .hashing import (Permutation, hash_at, normal_from_bits, permute, stream_key,
                      uniform_at, uniform_of, unpermute)
from .options import ConvertError, ConvertOptions
from .overlap import prefetch
from .output import ConvertSummary, OutputDir, ScratchArray, SpaceNeed, Stages
from .sources import RowSource, Where

RMAT_GRAPH500 = (0.57, 0.19, 0.19)
SYNTHETIC_SPLIT = (0.1, 0.05, 0.05)
# Hash streams (one per kind of random value).
_S_EDGES, _S_HOMOPHILY, _S_NODE_PERM, _S_MEANS, _S_NOISE = 11, 12, 13, 14, 15
_S_USER_PERM, _S_ITEM_PERM, _S_PAIR_SPLIT = 21, 22, 23


def rmat_table(rmat: tuple[float, float, float]) -> np.ndarray:
    """R-MAT choices for two levels at once from 16 random bits.

    Entry x (0..65535) holds the 2 row bits and 2 column bits
    ((r1 r2) << 2 | (c1 c2)) of the quadrant pair whose cumulative product
    probability first exceeds (x + 0.5) / 65536: one table load per two levels.
    """
    a, b, c = (float(x) for x in rmat)
    if min(a, b, c) < 0 or a + b + c > 1:
        raise ConvertError(f"R-MAT probabilities a,b,c = {rmat}: expected non-negative with "
                           f"a + b + c <= 1 (d = 1 - a - b - c)")
    p = np.array([a, b, c, max(0.0, 1.0 - a - b - c)])
    quadrant = np.array([(0, 0), (0, 1), (1, 0), (1, 1)])        # (row bit, column bit)
    cum = np.cumsum(np.outer(p, p).ravel()) * 65536.0
    pick = np.searchsorted(cum, np.arange(65536) + 0.5, side="right").clip(0, 15)
    q1, q2 = pick // 4, pick % 4
    rows = quadrant[q1, 0] * 2 + quadrant[q2, 0]
    cols = quadrant[q1, 1] * 2 + quadrant[q2, 1]
    return ((rows << 2) | cols).astype(np.uint8)


def _scale(n: int) -> int:
    return max(1, (int(n) - 1).bit_length())


@numba.njit(nogil=True, cache=True, inline="always")
def _rmat_pair(key, e, scale, table):
    """Row and column position of R-MAT draw e in [0, 2^scale)^2."""
    words = (scale + 7) // 8                   # 64 random bits serve 8 levels
    base = np.uint64(e) * np.uint64(words)
    r = np.int64(0)
    c = np.int64(0)
    left = scale
    for w in range(words):
        h = hash_at(key, base + np.uint64(w))
        for _ in range(4):
            if left <= 0:
                break
            t = np.int64(table[np.int64(h & np.uint64(0xFFFF))])
            h >>= np.uint64(16)
            if left >= 2:
                r = (r << 2) | (t >> 2)
                c = (c << 2) | (t & 3)
                left -= 2
            else:
                r = (r << 1) | (t >> 3)
                c = (c << 1) | ((t >> 1) & 1)
                left -= 1
    return r, c


@numba.njit(nogil=True, cache=True, inline="always")
def _down(v, n, scale):
    """Map a position in [0, 2^scale) onto [0, n), keeping order (and so the skew)."""
    x = np.int64(float(v) * (float(n) / float(np.int64(1) << scale)))
    return min(x, n - 1)


@numba.njit(nogil=True, cache=True, parallel=True)
def _node_rows(key, start, count, means, sigma, classes, perm, feats, labels, with_features):
    dim = means.shape[1]
    for i in numba.prange(count):
        u = start + i
        k = unpermute(u, perm) % classes
        labels[i] = k
        if with_features:
            for j in range(dim):
                feats[i, j] = means[k, j] + sigma * normal_from_bits(hash_at(key, u * dim + j))


@numba.njit(nogil=True, cache=True)
def _class_means(key, classes, dim):
    out = np.empty((classes, dim), np.float32)
    for k in range(classes):
        for j in range(dim):
            out[k, j] = normal_from_bits(hash_at(key, k * dim + j))
    return out


@numba.njit(nogil=True, cache=True, parallel=True)
def _rmat_pairs(key_e, key_h, start, count, users, items, scale, table, groups, homophily,
                uperm, iperm, out_u, out_i):
    """R-MAT pairs (row in [0, users), column in [0, items)) for edges start..start+count; a
    `homophily` share of columns is moved into the row's group (class). A node graph is the
    square case: users = items = nodes, groups = classes, one permutation for both."""
    for i in numba.prange(count):
        e = start + i
        r, c = _rmat_pair(key_e, e, scale, table)
        u = _down(r, users, scale)
        it = _down(c, items, scale)
        if uniform_at(key_h, e) < homophily:
            it = it - it % groups + u % groups
            if it >= items:
                it -= groups
        out_u[i] = permute(u, uperm)
        out_i[i] = permute(it, iperm)


class SyntheticNodes:
    """The planted-class model: edges, features and labels of a seed, in blocks."""

    def __init__(self, nodes: int, edges: int, dim: int, classes: int, seed: int,
                 homophily: float, noise: float, rmat: tuple[float, float, float]):
        if nodes < 1 or edges < 0 or dim < 0:
            raise ConvertError(f"synthetic graph: nodes={nodes}, edges={edges}, dim={dim}: "
                               f"expected nodes >= 1, edges >= 0, dim >= 0")
        if not 1 <= classes <= nodes:
            raise ConvertError(f"synthetic graph: classes={classes}, expected 1..{nodes}")
        if not 0 <= homophily <= 1 or noise < 0:
            raise ConvertError(f"synthetic graph: homophily={homophily} (0..1), "
                               f"noise={noise} (>= 0)")
        self.nodes, self.edges, self.dim, self.classes = int(nodes), int(edges), int(dim), classes
        self.seed, self.homophily, self.noise = int(seed), float(homophily), float(noise)
        self.rmat = tuple(float(x) for x in rmat)
        self.table = rmat_table(rmat)
        self.scale = _scale(nodes)
        self.perm = Permutation(nodes, seed, _S_NODE_PERM)
        self.sigma = np.float32(noise * np.sqrt(max(dim, 1) / 2.0))
        self.means = _class_means(stream_key(seed, _S_MEANS), classes, max(dim, 1))

    def params(self) -> dict:
        return {"generator": "rmat-planted-classes", "seed": self.seed, "edges_drawn": self.edges,
                "classes": self.classes, "homophily": self.homophily, "noise": self.noise,
                "rmat_abc": list(self.rmat)}

    def edge_blocks(self, block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ke, kh = stream_key(self.seed, _S_EDGES), stream_key(self.seed, _S_HOMOPHILY)
        for start in range(0, self.edges, block):
            count = min(block, self.edges - start)
            src = np.empty(count, np.int64)
            dst = np.empty(count, np.int64)
            perm = self.perm.params()
            _rmat_pairs(ke, kh, start, count, self.nodes, self.nodes, self.scale, self.table,
                        self.classes, self.homophily, perm, perm, src, dst)
            yield src, dst

    def rows(self, start: int, count: int, with_features: bool) -> tuple[np.ndarray, np.ndarray]:
        feats = np.empty((count if with_features else 0, max(self.dim, 1)), np.float32)
        labels = np.empty(count, np.int64)
        _node_rows(stream_key(self.seed, _S_NOISE), start, count, self.means, self.sigma,
                   self.classes, self.perm.params(), feats, labels, with_features)
        return feats, labels


class _GeneratedRows(RowSource):
    """Features or labels of a SyntheticNodes model as a row source."""

    def __init__(self, model: SyntheticNodes, what: str):
        self.model, self.what = model, what
        self.name = f"synthetic {what}"
        self.num_rows = model.nodes
        self.row_shape = (model.dim,) if what == "features" else ()
        self.dtype = np.dtype(np.float32 if what == "features" else np.int64)

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, Where]]:
        for start in range(0, self.model.nodes, block_rows):
            count = min(block_rows, self.model.nodes - start)
            feats, labels = self.model.rows(start, count, self.what == "features")
            yield (feats if self.what == "features" else labels), \
                (lambda k, s=start: f"{self.name}: row {s + k}")


def generate_synthetic(output: str | Path, *, nodes: int, edges: int, dim: int = 128,
                       classes: int = 16, seed: int = 0, homophily: float = 0.8,
                       noise: float = 1.0, rmat: tuple[float, float, float] = RMAT_GRAPH500,
                       split_fractions: tuple[float, float, float] = SYNTHETIC_SPLIT,
                       options: ConvertOptions | None = None) -> ConvertSummary:
    """Generate a node-classification dataset: R-MAT power-law graph with planted classes.

    `edges` is the number of directed edges before cleaning: the graph is
    undirected by default (reverse_edges), so edges/2 R-MAT draws are made and
    each is stored both ways; self loops and duplicates are then dropped, so
    the stored count is somewhat lower (reported). Features are float32 unless
    options.feature_dtype is "float16".
    """
    opts = (options or ConvertOptions()).with_defaults(reverse_edges=True, drop_self_loops=True,
                                                      dedup=True)
    draws = -(-edges // 2) if opts.reverse_edges else edges
    model = SyntheticNodes(nodes, draws, dim, classes, seed, homophily, noise, rmat)
    if opts.feature_dtype is not None and opts.feature_dtype not in FEATURE_DTYPES:
        raise ConvertError(f"feature dtype {opts.feature_dtype!r} not in {FEATURE_DTYPES}")
    block = int(max(1024, min(1 << 22, working_budget(opts.memory_limit) // 64)))

    def feed(collector: EdgeCollector) -> None:
        for src, dst in prefetch(model.edge_blocks(block)):
            collector.add(src, dst)

    return build_node_dataset(
        output, fmt="synthetic", source=f"synthetic R-MAT, seed {seed}", opts=opts,
        feed_edges=feed, num_nodes=nodes, expected_edges=draws,
        features=_GeneratedRows(model, "features") if dim else None,
        labels=_GeneratedRows(model, "labels"), num_classes=classes,
        splits=SplitSpec(fractions=split_fractions, seed=seed), extra_attrs=model.params())


def generate_synthetic_links(output: str | Path, *, users: int, items: int, interactions: int,
                             groups: int = 16, homophily: float = 0.8, seed: int = 0,
                             test_fraction: float = 0.2, val_fraction: float = 0.0,
                             rmat: tuple[float, float, float] = RMAT_GRAPH500,
                             options: ConvertOptions | None = None) -> ConvertSummary:
    """Generate a recommender dataset: R-MAT user-item interactions with planted groups.

    `interactions` draws are made and merged into distinct pairs; each pair is
    assigned to test, val or train by a hash of the pair and the seed.
    """
    opts = (options or ConvertOptions()).with_defaults(dedup=True)
    if users < 1 or items < 1 or interactions < 1:
        raise ConvertError(f"synthetic links: users={users}, items={items}, "
                           f"interactions={interactions}: all must be >= 1")
    if not 1 <= groups <= min(users, items) or not 0 <= homophily <= 1:
        raise ConvertError(f"synthetic links: groups={groups} (1..min(users, items)), "
                           f"homophily={homophily} (0..1)")
    if test_fraction < 0 or val_fraction < 0 or test_fraction + val_fraction >= 1:
        raise ConvertError(f"synthetic links: test_fraction={test_fraction}, val_fraction="
                           f"{val_fraction}: expected non-negative, summing below 1")
    table = rmat_table(rmat)
    scale = max(_scale(users), _scale(items))
    uperm = Permutation(users, seed, _S_USER_PERM)
    iperm = Permutation(items, seed, _S_ITEM_PERM)
    budget = working_budget(opts.memory_limit)
    block = int(max(1024, min(1 << 22, budget // 64)))
    n = users + items
    stages = Stages()
    with OutputDir(output, overwrite=opts.overwrite, tmp_dir=opts.tmp_dir) as od:
        csc = csc_bytes(n, 2 * interactions, False, opts.chunk_bytes)
        od.require_space(SpaceNeed(output=csc + 16 * interactions, scratch=edge_scratch_bytes(
            n, 3 * interactions, False, True, False) + 16 * interactions, alongside=csc),
            f"generating {output}")
        pairs = EdgeCollector(od.scratch, memory_limit=opts.memory_limit, num_nodes=n,
                              dedup=True, expected_edges=interactions, progress=opts.progress,
                              desc="draws")
        ke, kh = stream_key(seed, _S_EDGES), stream_key(seed, _S_HOMOPHILY)
        stores = {"train": ScratchArray(od.scratch / "train.bin", np.int64, (2,)),
                  "test": ScratchArray(od.scratch / "test.bin", np.int64, (2,))}
        if val_fraction > 0:
            stores["val"] = ScratchArray(od.scratch / "val.bin", np.int64, (2,))
        try:
            for start in range(0, interactions, block):
                count = min(block, interactions - start)
                u = np.empty(count, np.int64)
                it = np.empty(count, np.int64)
                _rmat_pairs(ke, kh, start, count, users, items, scale, table, groups, homophily,
                            uperm.params(), iperm.params(), u, it)
                pairs.add(u, it + users)
            pairs.finish()
            key = stream_key(seed, _S_PAIR_SPLIT)
            for run in pairs.runs():
                item = np.repeat(np.arange(run.lo, run.hi, dtype=np.int64) - users, run.counts)
                user = run.sources.astype(np.int64)
                x = uniform_of(key, user * items + item)
                both = np.stack([user, item], axis=1)
                stores["test"].write(both[x < test_fraction])
                if "val" in stores:
                    stores["val"].write(both[(x >= test_fraction)
                                             & (x < test_fraction + val_fraction)])
                stores["train"].write(both[x >= test_fraction + val_fraction])
        finally:
            pairs.close()
        stages.done("draws")
        return finish_link_dataset(
            od, opts, stages, fmt="synthetic-link", source=f"synthetic R-MAT links, seed {seed}",
            interactions=stores, num_users=users, num_items=items,
            extra_attrs={"generator": "rmat-planted-groups", "seed": seed,
                         "interactions_drawn": interactions, "groups": groups,
                         "homophily": homophily, "test_fraction": test_fraction,
                         "val_fraction": val_fraction, "rmat_abc": list(rmat)})
