"""DRAM tier: the array in process memory, gathered with the parallel numba kernel."""
from __future__ import annotations

import numpy as np

from ..format import ArrayLayout
from ..gather import gather_rows, scatter_rows
from .base import Tier, TierHints


def _pinned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | None:
    """Page-locked host memory when CUDA is present (faster, async copies to the GPU)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    t = torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), pin_memory=True)
    return t.numpy()


class DRAMTier(Tier):
    """Rows held in a numpy array (pinned through torch when CUDA exists)."""

    def __init__(self, array: np.ndarray, name: str = "dram", pin: bool = True):
        array = np.asarray(array)
        if array.ndim == 0:
            raise ValueError(f"{name}: a tier needs at least a 1-D array")
        super().__init__(name, array.shape[0], array.shape[1:], array.dtype)
        buf = _pinned_empty(array.shape, array.dtype) if pin else None
        if buf is not None:
            buf[...] = array
            array = buf
        self.array = np.ascontiguousarray(array)
        self.pinned = buf is not None

    @classmethod
    def from_layout(cls, layout: ArrayLayout, pin: bool = True) -> "DRAMTier":
        """Load an on-disk array whole into DRAM."""
        return cls(layout.read_all(), name=f"dram:{layout.name}", pin=pin)

    @property
    def hints(self) -> TierHints:
        return TierHints(kind="dram", page_bytes=1, parallel_requests=1)

    def _read(self, ids: np.ndarray, out: np.ndarray) -> int:
        gather_rows(self.array, ids, out)
        return out.nbytes

    def _write(self, ids: np.ndarray, rows: np.ndarray) -> int:
        scatter_rows(self.array, ids, rows)
        return rows.nbytes
