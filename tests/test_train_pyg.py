"""The PyG FeatureStore/GraphStore adapter (skipped when torch_geometric is not installed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from node_data import make_node_dataset  # noqa: E402
from tiered.pyg import from_dataset  # noqa: E402


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("pyg") / "ds"
    return root, make_node_dataset(root, n=1000, dim=8, train=200)


def test_feature_store_reads_rows_from_the_tier(ds):
    root, arrays = ds
    fs, gs = from_dataset(root)
    try:
        idx = torch.tensor([5, 1, 999, 5])
        assert torch.equal(fs.get_tensor(None, "x", idx),
                           torch.from_numpy(arrays["features"][[5, 1, 999, 5]]))
        assert fs.get_tensor_size(None, "x") == (1000, 8)
        row, colptr = gs.csc()[:2]
        assert torch.equal(colptr, torch.from_numpy(arrays["indptr"]))
        assert torch.equal(row, torch.from_numpy(arrays["indices"].astype(np.int64)))
    finally:
        fs.tiers["x"].close()


def test_neighbor_loader_over_the_stores(ds):
    root, arrays = ds
    try:
        import torch_sparse  # noqa: F401
    except ImportError:
        try:
            import pyg_lib  # noqa: F401
        except ImportError:
            pytest.skip("PyG's NeighborLoader needs pyg-lib or torch-sparse")
    from torch_geometric.loader import NeighborLoader
    fs, gs = from_dataset(root)
    try:
        loader = NeighborLoader((fs, gs), num_neighbors=[5, 5], batch_size=64,
                                input_nodes=torch.from_numpy(arrays["train_idx"]))
        n = 0
        for data in loader:
            ids = data.n_id.numpy()
            assert np.array_equal(data.x.numpy(), arrays["features"][ids])
            assert np.array_equal(data.y.numpy(), arrays["labels"][ids])
            n += 1
        assert n == 4
    finally:
        fs.tiers["x"].close()
