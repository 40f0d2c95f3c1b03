"""`edgelist`: text, CSV or TSV edge lists (`src dst [weight]`), plain or gzip."""
from __future__ import annotations

from pathlib import Path

from .build import build_node_dataset, make_splits
from .csc import EdgeCollector, working_budget
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary
from .overlap import prefetch
from .sources import RowSource
from .textparse import KIND_FLOAT, KIND_ID, first_row_fields, is_gzip, iter_table

# Rough text bytes per edge line, to size partitions before the count is known.
_BYTES_PER_LINE = 12
_GZIP_RATIO = 4


def edge_table_kinds(path: Path, skip_header: bool) -> list[int]:
    """Column kinds of an edge list: two ids and an optional weight."""
    fields = first_row_fields(path, skip_header)
    if fields not in (2, 3):
        raise ConvertError(f"{path}: expected 2 fields (src dst) or 3 (src dst weight) on the "
                           f"first data line, found {fields}")
    return [KIND_ID, KIND_ID] + [KIND_FLOAT] * (fields - 2)


def estimate_lines(path: Path) -> int:
    """A rough line count from the file size, for sizing (never for results)."""
    size = path.stat().st_size * (_GZIP_RATIO if is_gzip(path) else 1)
    return max(1, size // _BYTES_PER_LINE)


def feed_text_edges(collector: EdgeCollector, path: Path, kinds: list[int], skip_header: bool,
                    weighted: bool, block_bytes: int) -> None:
    """Parse an edge-list file block by block into the collector."""
    for tb in prefetch(iter_table(path, kinds, skip_header, block_bytes)):
        collector.add(tb.ints[:, 0], tb.ints[:, 1],
                      tb.floats[:, 2] if weighted else None, where=tb.where)


def text_block_bytes(memory_limit: int) -> int:
    """Text block size: parsed ids cost about 4x the text, so a sixteenth of the budget."""
    return int(min(64 << 20, max(1 << 16, working_budget(memory_limit) // 16)))


def convert_edgelist(edges: str | Path, output: str | Path, *, num_nodes: int | None = None,
                     weights: bool = False, header: bool = False,
                     features: RowSource | None = None, labels: RowSource | None = None,
                     num_classes: int | None = None, train: RowSource | None = None,
                     val: RowSource | None = None, test: RowSource | None = None,
                     split_fractions: tuple[float, float, float] | None = None, seed: int = 0,
                     options: ConvertOptions | None = None) -> ConvertSummary:
    """Convert an edge list into a node-task dataset.

    Lines are `src dst` or `src dst weight`, separated by spaces, tabs or
    commas; '#' and '%' start comments. `weights=True` keeps the third column as
    the `edge_weight` array. The node count is `num_nodes`, else the rows of
    .npy features/labels, else the largest id + 1. Without split files, labelled
    nodes are split at random (`split_fractions`, default 0.6/0.2/0.2) by `seed`.
    """
    opts = (options or ConvertOptions()).with_defaults()
    path = Path(edges)
    if not path.is_file():
        raise ConvertError(f"{path}: no such edge-list file")
    kinds = edge_table_kinds(path, header)
    if weights and len(kinds) < 3:
        raise ConvertError(f"{path}: weights requested but lines have no third column")
    block = text_block_bytes(opts.memory_limit)
    return build_node_dataset(
        output, fmt="edgelist", source=str(path.absolute()), opts=opts,
        feed_edges=lambda c: feed_text_edges(c, path, kinds, header, weights, block),
        num_nodes=num_nodes, expected_edges=estimate_lines(path), weighted=weights,
        features=features, labels=labels, num_classes=num_classes,
        splits=make_splits(train, val, test, split_fractions, seed, labels is not None))
