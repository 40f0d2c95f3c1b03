"""PyG's remote-backend interface over tiered's tiers: a FeatureStore and a GraphStore.

For PyG users who keep their loop: `NeighborLoader((feature_store, graph_store), ...)`
samples with PyG and fetches `x` and `y` rows through the tiers (the SSD tier's
O_DIRECT, page-deduplicated reads instead of a memory map). tiered's own loader
(tiered.train.NodeLoader) is faster, because it plans a cache over each superbatch;
this adapter reads every row it is asked for. torch_geometric is optional: importing
this module without it raises ImportError saying so.
"""
from __future__ import annotations

import os

import numpy as np
import torch

try:
    from torch_geometric.data import EdgeAttr, FeatureStore, GraphStore, TensorAttr
    from torch_geometric.typing import EdgeTensorType
except ImportError as e:                     # pragma: no cover - depends on the install
    raise ImportError("tiered.pyg needs torch_geometric (pip install torch_geometric); "
                      "tiered.train works without it") from e

from .dataset import open_dataset
from .tiers.base import Tier
from .tiers.dram import DRAMTier


def _ids(index, num_rows: int) -> np.ndarray:
    if index is None:
        return np.arange(num_rows, dtype=np.int64)
    if isinstance(index, slice):
        return np.arange(num_rows, dtype=np.int64)[index]
    if isinstance(index, int):
        return np.array([index], dtype=np.int64)
    if isinstance(index, torch.Tensor):
        return index.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(index, dtype=np.int64)


class TieredFeatureStore(FeatureStore):
    """Node attributes (`x`, `y`, ...) of a homogeneous graph, each read from a Tier."""

    def __init__(self, tiers: dict[str, Tier]):
        super().__init__()
        self.tiers = dict(tiers)

    def _tier(self, attr: TensorAttr) -> Tier:
        try:
            return self.tiers[attr.attr_name]
        except KeyError:
            raise KeyError(f"TieredFeatureStore has no attribute {attr.attr_name!r} "
                           f"(has {sorted(self.tiers)})") from None

    def _get_tensor(self, attr: TensorAttr) -> torch.Tensor:
        tier = self._tier(attr)
        return torch.from_numpy(tier.read_rows(_ids(attr.index, tier.num_rows)))

    def _put_tensor(self, tensor, attr: TensorAttr) -> bool:
        tier = self._tier(attr)
        ids = _ids(attr.index, tier.num_rows)
        tier.write_rows(ids, np.ascontiguousarray(torch.as_tensor(tensor).cpu().numpy()))
        return True

    def _remove_tensor(self, attr: TensorAttr) -> bool:
        return self.tiers.pop(attr.attr_name, None) is not None

    def _get_tensor_size(self, attr: TensorAttr) -> tuple[int, ...]:
        tier = self._tier(attr)
        return (tier.num_rows,) + tier.row_shape

    def get_all_tensor_attrs(self) -> list[TensorAttr]:
        return [TensorAttr(group_name=None, attr_name=name, index=None) for name in self.tiers]


class TieredGraphStore(GraphStore):
    """The graph's CSC topology (indptr, indices), as PyG's samplers read it."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray):
        super().__init__()
        self.num_nodes = len(indptr) - 1
        self.colptr = torch.from_numpy(np.asarray(indptr, dtype=np.int64))
        self.row = torch.from_numpy(np.asarray(indices, dtype=np.int64))

    def _put_edge_index(self, edge_index: EdgeTensorType, edge_attr: EdgeAttr) -> bool:
        raise NotImplementedError("TieredGraphStore is read-only: write datasets with tiered-convert")

    def _get_edge_index(self, edge_attr: EdgeAttr) -> EdgeTensorType | None:
        if edge_attr.layout.value != "csc":
            return None
        return self.row, self.colptr

    def _remove_edge_index(self, edge_attr: EdgeAttr) -> bool:
        return False

    def get_all_edge_attrs(self) -> list[EdgeAttr]:
        return [EdgeAttr(None, "csc", size=(self.num_nodes, self.num_nodes))]


def from_dataset(path: str | os.PathLike, features_on: str = "ssd"
                 ) -> tuple[TieredFeatureStore, TieredGraphStore]:
    """(feature_store, graph_store) of a dataset directory: `x` on the SSD tier (or "dram"),
    `y` (labels) and the topology in DRAM. Close with `feature_store.tiers["x"].close()`."""
    ds = open_dataset(path)
    if features_on == "ssd":
        from .tiers.ssd import SSDTier
        x: Tier = SSDTier(ds.layout("features"))
    elif features_on == "dram":
        x = DRAMTier.from_layout(ds.layout("features"), pin=False)
    else:
        raise ValueError(f"features_on must be 'ssd' or 'dram', got {features_on!r}")
    tiers = {"x": x}
    if "labels" in ds:
        tiers["y"] = DRAMTier(ds.load("labels"), name="dram:labels", pin=False)
    return TieredFeatureStore(tiers), TieredGraphStore(ds.load("indptr"), ds.load("indices"))
