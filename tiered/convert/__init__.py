"""tiered-convert: turn graph datasets into tiered's on-disk format without holding the graph
in RAM. One function per input format; `convert(format, input, output, ...)` dispatches.
See docs/convert.md.
"""
from __future__ import annotations

from pathlib import Path

from .build import SplitSpec
from .edgelist import convert_edgelist
from .lightgcn import convert_lightgcn
from .npy import convert_npy
from .ogb import convert_ogb
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary
from .planetoid import convert_planetoid
from .sources import ArrayRows, RowSource, open_rows
from .synthetic import generate_synthetic, generate_synthetic_links

FORMATS = {"edgelist": convert_edgelist, "npy": convert_npy, "ogb": convert_ogb,
           "planetoid": convert_planetoid, "lightgcn": convert_lightgcn}
GENERATORS = {"synthetic": generate_synthetic, "synthetic-link": generate_synthetic_links}


def convert(format: str, input: str | Path | None, output: str | Path, **kwargs
            ) -> ConvertSummary:
    """Convert `input` in `format` into a dataset at `output` (the Python form of the command).

    For "synthetic" and "synthetic-link", `input` is None and the sizes are keyword
    arguments. Other keyword arguments are those of the format's function.
    """
    if format in GENERATORS:
        if input is not None:
            raise ConvertError(f"format {format!r} generates data; pass input=None")
        return GENERATORS[format](output, **kwargs)
    if format not in FORMATS:
        raise ConvertError(f"unknown format {format!r} (known: "
                           f"{sorted(FORMATS) + sorted(GENERATORS)})")
    return FORMATS[format](input, output, **kwargs)


__all__ = ["convert", "convert_edgelist", "convert_npy", "convert_ogb", "convert_planetoid",
           "convert_lightgcn", "generate_synthetic", "generate_synthetic_links",
           "ConvertOptions", "ConvertError", "ConvertSummary", "SplitSpec", "RowSource",
           "ArrayRows", "open_rows", "FORMATS", "GENERATORS"]
