"""The `tiered-convert` command: `tiered-convert FORMAT INPUT OUTPUT [options]`,
`tiered-convert synthetic OUTPUT ...`, `tiered-convert verify PATH`."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from ..dataset import verify_dataset
from ..format import FEATURE_DTYPES, FormatError
from . import (convert_edgelist, convert_lightgcn, convert_npy, convert_ogb,
               convert_planetoid, generate_synthetic, generate_synthetic_links)
from .build import parse_fractions
from ..units import format_size
from .options import ConvertError, ConvertOptions, default_memory_limit, parse_memory_limit
from .sources import parse_source_arg
from .synthetic import RMAT_GRAPH500, SYNTHETIC_SPLIT

_COUNT_SUFFIX = {"k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(text: str) -> int:
    """'100M' -> 100_000_000; also plain integers and '1e9'."""
    t = text.strip().lower().replace("_", "")
    try:
        if t and t[-1] in _COUNT_SUFFIX:
            return int(float(t[:-1]) * _COUNT_SUFFIX[t[-1]])
        return int(float(t)) if ("e" in t or "." in t) else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count like 1000, 2.5M or 1B")


def _size(text: str) -> int:
    try:
        return parse_memory_limit(text)
    except ConvertError as e:
        raise argparse.ArgumentTypeError(str(e))


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        return parse_fractions(text)
    except ConvertError as e:
        raise argparse.ArgumentTypeError(str(e))


def _triple(text: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three numbers a,b,c") from None
    return a, b, c


def _run_options(p: argparse.ArgumentParser, graph: bool = True) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--memory-limit", type=_size, default=None, metavar="SIZE",
                   help="working memory budget, e.g. 8G or 50%% (default: 50%% of RAM, "
                        f"{format_size(default_memory_limit())} here)")
    g.add_argument("--tmp-dir", type=Path, help="scratch directory (default: beside OUTPUT)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--name", help="dataset name stored in the attributes")
    g.add_argument("--chunk-size", type=_size, default=None, metavar="SIZE",
                   help="bytes per array chunk file (default 1G)")
    g.add_argument("--summary-json", type=Path, metavar="FILE",
                   help="also write the summary as JSON")
    if not graph:
        return
    g = p.add_argument_group("graph")
    bool_opt = argparse.BooleanOptionalAction
    g.add_argument("--reverse-edges", action=bool_opt, default=None,
                   help="add dst->src for every edge (make the graph undirected)")
    g.add_argument("--drop-self-loops", action=bool_opt, default=None, help="drop u->u edges")
    g.add_argument("--dedup", action=bool_opt, default=None, help="merge duplicate edges")
    g.add_argument("--compact-ids", action="store_true",
                   help="renumber the nodes that have edges to 0..n-1 (writes node_ids)")
    g.add_argument("--feature-dtype", "--dtype", choices=FEATURE_DTYPES, default=None,
                   help="store features as this dtype (default float32; float16 stays)")


def _node_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("node data (files: .npy, ARCHIVE.npz:KEY, or text/CSV, "
                             "optionally .gz)")
    g.add_argument("--num-nodes", type=parse_count,
                   help="node count (default: rows of .npy features/labels, else max id + 1)")
    g.add_argument("--features", metavar="FILE", help="node features, one row per node")
    g.add_argument("--labels", metavar="FILE",
                   help="node labels, one per node (-1 or nan: unlabelled)")
    g.add_argument("--num-classes", type=int, help="class count (default: max label + 1)")
    g.add_argument("--train-idx", metavar="FILE", help="train node ids (or a boolean mask)")
    g.add_argument("--val-idx", metavar="FILE", help="validation node ids (or mask)")
    g.add_argument("--test-idx", metavar="FILE", help="test node ids (or mask)")
    g.add_argument("--split", type=_fractions, metavar="TRAIN,VAL,TEST",
                   help="random split of the labelled nodes when no id files are given "
                        "(default 0.6,0.2,0.2)")
    g.add_argument("--seed", type=int, default=0, help="seed of the random split")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiered-convert",
        description="Convert graph datasets into tiered's on-disk format, out of core.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="FORMAT")

    p = sub.add_parser("edgelist", help="text/CSV/TSV edge list (src dst [weight])")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--weights", action="store_true", help="keep the third column as edge_weight")
    p.add_argument("--header", action="store_true", help="skip the first line of text files")
    _node_options(p)
    _run_options(p)

    p = sub.add_parser("npy", help="numpy edge_index (2 x E) in .npy/.npz, plus node arrays")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    _node_options(p)
    _run_options(p)

    p = sub.add_parser("ogb", help="OGB node-property-prediction directory (ogbn-*)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--split-name", help="which split/<name> to use (default: the only one)")
    _run_options(p)

    p = sub.add_parser("planetoid", help="Planetoid ind.<name>.* files (Cora, CiteSeer, PubMed)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--dataset-name", help="<name> in ind.<name>.* (default: detected)")
    _run_options(p)

    p = sub.add_parser("lightgcn", help="user-item interaction files (user item item ...)")
    p.add_argument("input", type=Path, help="directory holding the files")
    p.add_argument("output", type=Path)
    p.add_argument("--train", default="train.txt", help="train file name (default train.txt)")
    p.add_argument("--test", default="test.txt", help="test file name (default test.txt)")
    p.add_argument("--val", help="validation file name (default: none)")
    p.add_argument("--num-users", type=parse_count, help="default: max user id + 1")
    p.add_argument("--num-items", type=parse_count, help="default: max item id + 1")
    _run_options(p)

    p = sub.add_parser("synthetic", help="R-MAT power-law graph with planted, learnable classes")
    p.add_argument("output", type=Path)
    p.add_argument("--nodes", type=parse_count, required=True)
    p.add_argument("--edges", type=parse_count, required=True,
                   help="directed edges before removing duplicates and self loops")
    p.add_argument("--dim", type=int, default=128, help="feature dimension (default 128)")
    p.add_argument("--classes", type=int, default=16, help="planted classes (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--homophily", type=float, default=0.8,
                   help="share of edges rewired to the source's class (default 0.8)")
    p.add_argument("--noise", type=float, default=1.0,
                   help="feature noise; class means sit 1/noise deviations from their "
                        "midpoints (default 1.0)")
    p.add_argument("--rmat", type=_triple, default=RMAT_GRAPH500, metavar="A,B,C",
                   help="R-MAT probabilities (default Graph500 0.57,0.19,0.19)")
    p.add_argument("--split", type=_fractions, default=SYNTHETIC_SPLIT, metavar="TRAIN,VAL,TEST",
                   help="random split fractions (default 0.1,0.05,0.05)")
    _run_options(p)

    p = sub.add_parser("synthetic-link", help="R-MAT user-item graph with planted groups")
    p.add_argument("output", type=Path)
    p.add_argument("--users", type=parse_count, required=True)
    p.add_argument("--items", type=parse_count, required=True)
    p.add_argument("--interactions", type=parse_count, required=True,
                   help="draws before merging duplicates")
    p.add_argument("--groups", type=int, default=16, help="planted groups (default 16)")
    p.add_argument("--homophily", type=float, default=0.8,
                   help="share of interactions inside the user's group (default 0.8)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--val-fraction", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rmat", type=_triple, default=RMAT_GRAPH500, metavar="A,B,C")
    _run_options(p, graph=False)

    p = sub.add_parser("verify", help="check a dataset directory; print every problem")
    p.add_argument("path", type=Path)
    return parser


def _options(args: argparse.Namespace) -> ConvertOptions:
    kw = {"tmp_dir": args.tmp_dir, "overwrite": args.overwrite, "progress": not args.quiet,
          "name": args.name}
    if args.memory_limit is not None:
        kw["memory_limit"] = args.memory_limit
    if args.chunk_size is not None:
        kw["chunk_bytes"] = args.chunk_size
    for key in ("reverse_edges", "drop_self_loops", "dedup", "compact_ids", "feature_dtype"):
        if hasattr(args, key):
            kw[key] = getattr(args, key)
    return ConvertOptions(**kw)


def _node_kwargs(args: argparse.Namespace, skip_header: bool = False) -> dict:
    def src(value, what):
        return parse_source_arg(value, what, skip_header) if value else None
    return {"features": src(args.features, "features"), "labels": src(args.labels, "labels"),
            "train": src(args.train_idx, "ids"), "val": src(args.val_idx, "ids"),
            "test": src(args.test_idx, "ids"), "num_nodes": args.num_nodes,
            "num_classes": args.num_classes, "split_fractions": args.split, "seed": args.seed}


def run(args: argparse.Namespace):
    """Execute a parsed command line; returns the ConvertSummary."""
    opts = _options(args)
    c = args.command
    if c == "edgelist":
        return convert_edgelist(args.input, args.output, weights=args.weights,
                                    header=args.header, options=opts,
                                    **_node_kwargs(args, args.header))
    if c == "npy":
        return convert_npy(args.input, args.output, options=opts, **_node_kwargs(args))
    if c == "ogb":
        return convert_ogb(args.input, args.output, split_name=args.split_name, options=opts)
    if c == "planetoid":
        return convert_planetoid(args.input, args.output, name=args.dataset_name,
                                     options=opts)
    if c == "lightgcn":
        return convert_lightgcn(args.input, args.output, train=args.train, test=args.test,
                                    val=args.val, num_users=args.num_users,
                                    num_items=args.num_items, options=opts)
    if c == "synthetic":
        return generate_synthetic(args.output, nodes=args.nodes, edges=args.edges,
                                      dim=args.dim, classes=args.classes, seed=args.seed,
                                      homophily=args.homophily, noise=args.noise,
                                      rmat=args.rmat, split_fractions=args.split, options=opts)
    if c == "synthetic-link":
        return generate_synthetic_links(
            args.output, users=args.users, items=args.items, interactions=args.interactions,
            groups=args.groups, homophily=args.homophily, seed=args.seed,
            test_fraction=args.test_fraction, val_fraction=args.val_fraction, rmat=args.rmat,
            options=opts)
    raise AssertionError(c)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)       # unwinds, so temporary output is removed


def main(argv: list[str] | None = None) -> int:
    """Entry point of `tiered-convert`; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "verify":
        problems = verify_dataset(args.path)
        for p in problems:
            print(p)
        if not problems:
            print(f"{args.path}: OK")
        return 1 if problems else 0
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        summary = run(args)
    except (ConvertError, FormatError, OSError) as e:
        print(f"tiered-convert: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tiered-convert: interrupted; no output written", file=sys.stderr)
        return 130
    print(summary.format_text())
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
