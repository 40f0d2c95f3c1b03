"""recall@K and ndcg@K with full ranking over all items, as the LightGCN reference computes them.

For every user with at least one test item: score every item (dot product of
final embeddings), drop the user's training items, take the top K, and

    recall@K = hits / |test items|
    ndcg@K   = sum over hits at rank r (0-based) of 1 / log2(r + 2), divided by
               the same sum over ranks 0 .. min(K, |test items|) - 1

averaged over those users (LightGCN's `RecallPrecision_ATk` and `NDCGatK_r`).
Users are scored in chunks whose user x item score matrix holds at most
`max_scores` floats, so memory stays bounded for any number of users and items.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch

DEFAULT_MAX_SCORES = 1 << 25         # floats in one chunk's score matrix (128 MiB)


@dataclass(frozen=True)
class RankingMetrics:
    """Means over the evaluated users (those with test items)."""

    k: int
    recall: float
    ndcg: float
    users: int

    def as_dict(self) -> dict:
        return {f"recall@{self.k}": self.recall, f"ndcg@{self.k}": self.ndcg,
                "eval_users": self.users}


@numba.njit(nogil=True, cache=True)
def _by_user(pairs, num_users):
    """CSR of items per user, each user's items sorted."""
    ptr = np.zeros(num_users + 1, np.int64)
    for e in range(pairs.shape[0]):
        ptr[pairs[e, 0] + 1] += 1
    for u in range(num_users):
        ptr[u + 1] += ptr[u]
    fill = ptr[:-1].copy()
    items = np.empty(pairs.shape[0], np.int64)
    for e in range(pairs.shape[0]):
        u = pairs[e, 0]
        items[fill[u]] = pairs[e, 1]
        fill[u] += 1
    for u in range(num_users):
        items[ptr[u]:ptr[u + 1]] = np.sort(items[ptr[u]:ptr[u + 1]])
    return ptr, items


@numba.njit(nogil=True, parallel=True, cache=True)
def _score_users(top, users, test_ptr, test_items, recall, ndcg):
    """recall and ndcg of each user's top-K list (top[i] for users[i])."""
    k = top.shape[1]
    disc = np.empty(k, np.float64)
    for r in range(k):
        disc[r] = 1.0 / np.log2(r + 2.0)
    for i in numba.prange(top.shape[0]):
        u = users[i]
        a = test_ptr[u]
        z = test_ptr[u + 1]
        hits = 0
        dcg = 0.0
        for r in range(k):
            j = np.searchsorted(test_items[a:z], top[i, r])
            if j < z - a and test_items[a + j] == top[i, r]:
                hits += 1
                dcg += disc[r]
        idcg = 0.0
        for r in range(min(k, z - a)):
            idcg += disc[r]
        recall[i] = hits / (z - a)
        ndcg[i] = dcg / idcg


@numba.njit(nogil=True, cache=True)
def _mask_positions(users, ptr, items, num_items, out):
    """Flat positions (row * num_items + item) of the chunk users' training items."""
    o = 0
    for i in range(users.shape[0]):
        u = users[i]
        for e in range(ptr[u], ptr[u + 1]):
            out[o] = i * num_items + items[e]
            o += 1


class InteractionIndex:
    """Per-user sorted item lists (CSR) of a split, built once for repeated evaluation."""

    def __init__(self, pairs: np.ndarray, num_users: int, num_items: int, what: str = "interactions"):
        pairs = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) and (pairs[:, 0].min() < 0 or pairs[:, 0].max() >= num_users
                           or pairs[:, 1].min() < 0 or pairs[:, 1].max() >= num_items):
            raise ValueError(f"{what}: (user, item) pairs must lie in [0, {num_users}) x "
                             f"[0, {num_items}); found users [{pairs[:, 0].min()}, "
                             f"{pairs[:, 0].max()}], items [{pairs[:, 1].min()}, {pairs[:, 1].max()}]")
        self.num_users, self.num_items = int(num_users), int(num_items)
        self.ptr, self.items = _by_user(pairs, self.num_users)

    def counts(self) -> np.ndarray:
        return np.diff(self.ptr)


def topk_items(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
               exclude: InteractionIndex, k: int) -> np.ndarray:
    """Top-k item ids (by dot product) of `users`, their `exclude` items removed: (n, k)."""
    scores = user_emb @ item_emb.t()
    ni = item_emb.shape[0]
    cnt = exclude.counts()[users]
    pos = np.empty(int(cnt.sum()), np.int64)
    _mask_positions(users, exclude.ptr, exclude.items, ni, pos)
    scores.view(-1)[torch.from_numpy(pos)] = -torch.inf
    return torch.topk(scores, min(k, ni), dim=1).indices.numpy()


def evaluate_ranking(user_emb, item_emb, train: InteractionIndex, test: InteractionIndex,
                     k: int = 20, max_scores: int = DEFAULT_MAX_SCORES) -> RankingMetrics:
    """recall@k and ndcg@k over all users with test items (see the module docstring).

    `user_emb` (num_users, d) and `item_emb` (num_items, d) may be numpy arrays
    (memmaps too: users are read chunk by chunk) or CPU tensors.
    """
    if user_emb.shape[0] != test.num_users or item_emb.shape[0] != test.num_items:
        raise ValueError(f"embeddings are {user_emb.shape[0]} users x {item_emb.shape[0]} items; "
                         f"the interactions index {test.num_users} x {test.num_items}")
    items = torch.as_tensor(np.asarray(item_emb, dtype=np.float32))
    users = np.flatnonzero(test.counts() > 0)
    chunk = max(1, int(max_scores) // max(1, test.num_items))
    recall = np.empty(len(users), np.float64)
    ndcg = np.empty(len(users), np.float64)
    for a in range(0, len(users), chunk):
        sel = users[a:a + chunk]
        u = torch.as_tensor(np.asarray(user_emb[sel], dtype=np.float32))
        top = topk_items(u, items, sel, train, k)
        _score_users(top, sel, test.ptr, test.items, recall[a:a + chunk], ndcg[a:a + chunk])
    n = len(users)
    return RankingMetrics(k, float(recall.mean()) if n else 0.0,
                          float(ndcg.mean()) if n else 0.0, n)
