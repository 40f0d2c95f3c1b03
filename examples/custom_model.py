"""A custom model on tiered: any torch.nn.Module whose forward takes (x, blocks).

    python examples/custom_model.py DATASET      # e.g. a directory made by tiered-convert
"""
import sys

import torch
from torch import nn

from tiered import open_dataset
from tiered.train import Trainer, make_config


class MeanMLP(nn.Module):
    """Each layer: concat(own state, mean of sampled in-neighbours) -> Linear -> ReLU."""

    def __init__(self, in_dim, hidden, out_dim, num_layers):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.lins = nn.ModuleList(nn.Linear(2 * a, b) for a, b in zip(dims, dims[1:]))

    def forward(self, x, blocks):               # blocks: outermost layer first
        for i, (lin, b) in enumerate(zip(self.lins, blocks)):
            src, dst = b.edge_index            # local ids; destinations are x[:b.num_dst]
            agg = torch.zeros(b.num_dst, x.shape[1]).index_add_(0, dst, x.index_select(0, src))
            agg = agg / torch.bincount(dst, minlength=b.num_dst).clamp(min=1).unsqueeze(1)
            x = lin(torch.cat([x[:b.num_dst], agg], 1))
            x = x.relu() if i < len(self.lins) - 1 else x
        return x                                # one row of class scores per seed


ds = open_dataset(sys.argv[1])
cfg = make_config(dataset=sys.argv[1], fanouts=[10, 5], batch_size=256, epochs=5, lr=0.01,
                  features_on="ssd", cache_size="10%")       # features on SSD, 10% DRAM cache
trainer = Trainer(cfg, model=MeanMLP(ds.feature_dim, 64, ds.num_classes, num_layers=2))
trainer.fit()
print(trainer.summary())
