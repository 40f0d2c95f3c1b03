"""BPR loss over a link batch's labelled pairs, with uniform or hard (DNS) negatives.

The sampler's edge mode gives each batch P positive pairs (user, item) and M
negative items per positive, drawn uniformly from the item range. With M = 1
that is BPR's uniform sampling; with M > 1 the negative kept for each positive
is the candidate its user currently scores highest (dynamic negative sampling,
Zhang et al. SIGIR 2013), which sharpens the gradient once easy negatives are
learnt. The L2 term is LightGCN's: on the layer-0 (ego) embeddings of the
batch's users, positives and chosen negatives, divided by P.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairBatch:
    """A batch's labelled pairs as local row ids of the model's output (seeds first)."""

    user: torch.Tensor          # (P,) int64
    pos: torch.Tensor           # (P,)
    neg: torch.Tensor           # (P, M) candidates

    @classmethod
    def from_label_index(cls, label_index: torch.Tensor, num_pos: int) -> "PairBatch":
        """The sampler's layout: P positive pairs, then M negatives per positive in
        positive order ((2, P * (1 + M)) local ids)."""
        total = label_index.shape[1]
        if num_pos < 1 or total % num_pos:
            raise ValueError(f"label_index has {total} pairs, not a multiple of num_pos={num_pos}")
        m = total // num_pos - 1
        if m < 1:
            raise ValueError("a BPR batch needs at least one negative per positive")
        return cls(label_index[0, :num_pos], label_index[1, :num_pos],
                   label_index[1, num_pos:].reshape(num_pos, m))


def choose_negatives(z: torch.Tensor, pairs: PairBatch) -> torch.Tensor:
    """One negative per positive: the only candidate, or the highest-scoring one (DNS)."""
    if pairs.neg.shape[1] == 1:
        return pairs.neg[:, 0]
    with torch.no_grad():
        s = (z[pairs.user].unsqueeze(1) * z[pairs.neg]).sum(-1)
    return pairs.neg.gather(1, s.argmax(1, keepdim=True)).squeeze(1)


def bpr_loss(z: torch.Tensor, ego: torch.Tensor, pairs: PairBatch, reg: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, bpr, l2): mean softplus(s_neg - s_pos) plus reg * L2 of the ego rows / P.

    `z` are the model's outputs for the batch seeds, `ego` their input rows
    (layer 0); both are indexed by the local ids in `pairs`.
    """
    neg = choose_negatives(z, pairs)
    p = len(pairs.user)
    idx = torch.cat([pairs.user, pairs.pos, neg])
    zu, zp, zn = z.index_select(0, idx).split(p)
    bpr = F.softplus((zu * zn).sum(1) - (zu * zp).sum(1)).mean()
    l2 = 0.5 * ego.index_select(0, idx).square().sum() / p
    return bpr + reg * l2, bpr, l2
