"""Row-wise optimizers for learnable tables whose state is stored beside each row.

A table row is a (1 + state_rows, dim) float32 block: row[0] the parameters,
row[1:] the optimizer's per-element state. Reading a row for a batch thus reads
its state in the same request, and a write-back persists both, wherever the
row lives (DRAM slab, PMem, SSD). Updates touch only the batch's rows, exactly
as torch's sparse-gradient optimizers do, so a table on the tiers follows the
same trajectory as an nn.Embedding(sparse=True) trained with
torch.optim.SparseAdam or torch.optim.Adagrad (the tests check it).
"""
from __future__ import annotations

import abc
import math

import numba
import numpy as np


@numba.njit(nogil=True, parallel=True, cache=True)
def _adam_rows(rows, grad, c1, c2, eps, step_size):
    """torch.optim.SparseAdam's update on each row, in the same float32 operation order
    (c1 = 1 - beta1 and c2 = 1 - beta2, rounded from double as torch rounds them)."""
    d = grad.shape[1]
    for i in numba.prange(rows.shape[0]):
        for k in range(d):
            g = grad[i, k]
            m0 = rows[i, 1, k]
            v0 = rows[i, 2, k]
            dm = (g - m0) * c1
            dv = (g * g - v0) * c2
            m = dm + m0
            v = dv + v0
            rows[i, 1, k] = m
            rows[i, 2, k] = v
            rows[i, 0, k] += -(step_size * (m / (np.sqrt(v) + eps)))


@numba.njit(nogil=True, parallel=True, cache=True)
def _adagrad_rows(rows, grad, lr, eps):
    """torch.optim.Adagrad's sparse update on each row."""
    d = grad.shape[1]
    for i in numba.prange(rows.shape[0]):
        for k in range(d):
            g = grad[i, k]
            s = rows[i, 1, k] + g * g
            rows[i, 1, k] = s
            rows[i, 0, k] += -lr * (g / (np.sqrt(s) + eps))


class RowOptimizer(abc.ABC):
    """Updates table rows in place from their gradients; `state_rows` state vectors per row."""

    name: str = ""
    state_rows: int = 0

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"{self.name}: learning rate must be positive, got {lr}")
        self.lr = float(lr)
        self.steps = 0

    def step(self, rows: np.ndarray, grad: np.ndarray) -> None:
        """One optimizer step on the batch's rows ((n, 1 + state_rows, dim) float32) given
        their gradients ((n, dim)); rows must be distinct table rows."""
        want = (len(grad), 1 + self.state_rows, grad.shape[1] if grad.ndim == 2 else -1)
        if rows.dtype != np.float32 or grad.dtype != np.float32 or rows.shape != want:
            raise ValueError(f"{self.name}: rows must be float32 of shape {want} and grad "
                             f"float32 (n, dim); got rows {rows.dtype} {rows.shape}, grad "
                             f"{grad.dtype} {grad.shape}")
        self.steps += 1
        self._step(rows, np.ascontiguousarray(grad))

    @abc.abstractmethod
    def _step(self, rows: np.ndarray, grad: np.ndarray) -> None:
        """Update checked rows in place."""

    def initial_state(self) -> float:
        """Value every state element starts at."""
        return 0.0

    def state_dict(self) -> dict:
        return {"name": self.name, "lr": self.lr, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"optimizer state is for {state.get('name')!r}, this is {self.name!r}")
        self.steps = int(state["steps"])


class SparseAdam(RowOptimizer):
    """Adam on the rows a batch touches (torch.optim.SparseAdam): one global step count for
    the bias correction, first and second moments per element (state rows 1 and 2)."""

    name = "adam"
    state_rows = 2

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def _step(self, rows: np.ndarray, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        t = self.steps
        step_size = self.lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        _adam_rows(rows, grad, np.float32(1 - b1), np.float32(1 - b2), np.float32(self.eps),
                   np.float32(step_size))


class RowAdagrad(RowOptimizer):
    """Adagrad (torch.optim.Adagrad with sparse gradients): a squared-gradient sum per
    element (state row 1)."""

    name = "adagrad"
    state_rows = 1

    def __init__(self, lr: float = 1e-2, eps: float = 1e-10, initial_accumulator_value: float = 0.0):
        super().__init__(lr)
        self.eps = float(eps)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def initial_state(self) -> float:
        return self.initial_accumulator_value

    def _step(self, rows: np.ndarray, grad: np.ndarray) -> None:
        _adagrad_rows(rows, grad, np.float32(self.lr), np.float32(self.eps))


ROW_OPTIMIZERS = {"adam": SparseAdam, "adagrad": RowAdagrad}


def make_row_optimizer(name: str, lr: float) -> RowOptimizer:
    """"adam" (SparseAdam) or "adagrad" with learning rate `lr`."""
    try:
        return ROW_OPTIMIZERS[name](lr=lr)
    except KeyError:
        raise ValueError(f"unknown row optimizer {name!r}; choose one of "
                         f"{sorted(ROW_OPTIMIZERS)}") from None
