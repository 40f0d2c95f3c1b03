"""tiered-train: train a node classifier on a tiered dataset, features on the tiers.

    tiered-train DATASET [--config FILE] [--model sage|gcn|gat|pkg.mod:Class] ...

Flags override the config file (YAML, TOML or JSON, keys as the long flags with
underscores); the file overrides the defaults. Sizes take units ("2GiB").
"""
from __future__ import annotations

import argparse
import sys

from ..settings import join_list_flags
from ..tiers.pmemobj import PMemError, PMemUnavailable
from .config import CACHE_POLICIES, FEATURE_TIERS, make_config
from .loader import BudgetError
from .trainer import ModelInterfaceError, Trainer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tiered-train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("dataset", nargs="?", help="dataset directory written by tiered-convert (or set in --config)")
    a("--task", choices=("node", "link"), default="node",
      help="node classification, or link prediction (GNN recommenders, tiered/recsys: see "
           "tiered-train --task link --help)")
    a("--config", help="YAML/TOML/JSON file of settings; flags given here override it")
    a("--model", help="sage, gcn, gat, or package.module:Class (a torch.nn.Module built as "
                      "Class(in_dim, hidden, out_dim, num_layers) whose forward takes (x, blocks) "
                      "or (x, adjs)) [sage]")
    a("--fanouts", help="neighbours sampled per hop, nearest hop first; -1 takes all; the count "
                        "is the model's depth [10,10]")
    a("--batch-size", type=int, help="seed nodes per mini-batch [1024]")
    a("--epochs", type=int, help="training epochs [10]")
    a("--lr", type=float, help="Adam learning rate [0.003]")
    a("--weight-decay", type=float, help="Adam weight decay (L2) [0]")
    a("--hidden", type=int, help="hidden width of the built-in models [128]")
    a("--dropout", type=float, help="dropout before each layer [0.5]")
    a("--heads", type=int, help="GAT attention heads [4]")
    a("--normalize-features", action="store_true", default=None,
      help="divide each feature row by its L1 norm before the model (as GCN's Planetoid runs do)")
    a("--dram-budget", help="DRAM the run may use for graph, cache and batch buffers, e.g. 2GiB "
                            "[80%% of available memory]")
    a("--pmem", help="PATH:SIZE of a persistent-memory pool for features or their cache")
    a("--features-on", choices=FEATURE_TIERS, help="tier holding the feature array; auto puts "
                                                   "it in DRAM when it fits the budget [auto]")
    a("--place", help="per-array tier overrides NAME=TIER[,NAME=TIER], e.g. indices=ssd "
                      "(arrays: features, indices, indptr, labels, ...; tiers: dram, pmem, ssd) "
                      "[the manager's rule, docs/tiers.md]")
    a("--cache", choices=CACHE_POLICIES, help="feature cache policy; belady replays the "
                                              "inspector's optimal plan [belady]")
    a("--cache-size", help="DRAM feature cache: rows, a share of rows (10%%) or bytes (64MiB) "
                           "[what the budget leaves]")
    a("--neighbor-cache", help="DRAM for the pages of indices most likely read, when indices "
                               "are not in DRAM, e.g. 256MiB (saves SSD reads; on a fast "
                               "SSD it may not save time, docs/inspector.md) [none]")
    a("--superbatch", type=int, help="batches sampled and planned together (Belady's lookahead) [32]")
    a("--prefetch", type=int, help="assembled batches queued ahead of the model [2]")
    a("--device", help="cpu or cuda[:N] [cpu]")
    a("--transfer", choices=("copy", "zero-copy"), help="CUDA hand-off: pinned copy on a side "
                                                        "stream, or GPU gather from pinned host memory [copy]")
    a("--seed", type=int, help="seed of sampling, shuffling and initialisation [0]")
    a("--eval-fanouts", help="fanouts for validation/test inference (-1: all neighbours) [= --fanouts]")
    a("--eval-batch-size", type=int, help="seeds per evaluation batch [= --batch-size]")
    a("--eval-every", type=int, help="evaluate every N epochs [1]")
    a("--patience", type=int, help="stop after N evaluations without a better val accuracy [off]")
    a("--checkpoint", help="directory for last.pt (resumable) and best.pt (best val accuracy)")
    a("--checkpoint-every", type=int, help="also checkpoint every N batches [0: epoch ends]")
    a("--resume", action="store_true", default=None,
      help="continue from --checkpoint DIR/last.pt at the batch after the last one trained")
    a("--metrics", help="append one JSON object per epoch to this file")
    a("--no-progress", dest="progress", action="store_false", default=None,
      help="no progress bars or per-epoch lines")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "link" in (argv[i + 1] if a == "--task" and i + 1 < len(argv) else a.partition("--task=")[2]
                  for i, a in enumerate(argv)):
        from ..recsys.cli import main as link_main
        return link_main(argv)
    args = build_parser().parse_args(join_list_flags(argv, ("--fanouts", "--eval-fanouts")))
    kw = vars(args)
    kw.pop("task")
    config_file = kw.pop("config")
    try:
        cfg = make_config(config_file, **kw)
        trainer = Trainer(cfg)
        print(trainer.loader.placement.describe(), file=sys.stderr)
        trainer.fit()
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, BudgetError, ModelInterfaceError, PMemError,
            PMemUnavailable) as e:
        print(f"tiered-train: error: {e}", file=sys.stderr)
        return 2
    print(trainer.summary())
    trainer.loader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
