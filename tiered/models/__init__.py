"""Built-in node classifiers over sampled blocks, and loading a user's model class by name."""
from __future__ import annotations

import importlib
import inspect

from torch import nn

from .gat import GAT, GATConv
from .gcn import GCN, GCNConv
from .sage import GraphSAGE, SAGEConv
from .stack import BlockStack

BUILTIN = {"sage": GraphSAGE, "gcn": GCN, "gat": GAT}

__all__ = ["GAT", "GATConv", "GCN", "GCNConv", "GraphSAGE", "SAGEConv", "BlockStack",
           "BUILTIN", "resolve_model_class", "build_model"]


def resolve_model_class(spec: str) -> type[nn.Module]:
    """"sage" | "gcn" | "gat" | "package.module:Class" -> the class."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if ":" not in spec:
        raise ValueError(f"unknown model {spec!r}: use one of {sorted(BUILTIN)} or "
                         "package.module:Class")
    mod_name, _, cls_name = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ValueError(f"model {spec!r}: cannot import module {mod_name!r} ({e})") from e
    try:
        cls = getattr(mod, cls_name)
    except AttributeError:
        raise ValueError(f"model {spec!r}: module {mod_name!r} has no attribute {cls_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"model {spec!r} is not a torch.nn.Module subclass")
    return cls


def build_model(spec: str, in_dim: int, hidden: int, out_dim: int, num_layers: int,
                dropout: float = 0.5, heads: int = 4) -> nn.Module:
    """Instantiate a built-in model, or a user class with (in_dim, hidden, out_dim, num_layers).

    A user class may also accept `dropout` (and `heads`); those are passed only
    when its constructor names them.
    """
    cls = resolve_model_class(spec)
    if cls is GAT:
        return GAT(in_dim, hidden, out_dim, num_layers, dropout, heads)
    if spec in BUILTIN:
        return cls(in_dim, hidden, out_dim, num_layers, dropout)
    params = inspect.signature(cls.__init__).parameters
    extra = {k: v for k, v in (("dropout", dropout), ("heads", heads)) if k in params}
    try:
        return cls(in_dim, hidden, out_dim, num_layers, **extra)
    except TypeError as e:
        raise TypeError(f"model {spec!r}: tiered constructs it as {cls.__name__}(in_dim, hidden, "
                        f"out_dim, num_layers[, dropout][, heads]); that failed: {e}") from e
