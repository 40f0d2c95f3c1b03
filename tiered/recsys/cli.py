"""tiered-train --task link: train a GNN recommender (BPR) with its embedding table on the tiers.

    tiered-train --task link DATASET [--model lightgcn|sage|pkg.mod:Class] [--embeddings-on ssd]
                 [--cache belady] [--cache-size 25%] ...

Flags override the config file (YAML, TOML or JSON, keys as the long flags with
underscores); the file overrides the defaults. Prints one line per epoch and a summary.
"""
from __future__ import annotations

import argparse
import sys

from ..plan import POLICIES
from ..settings import join_list_flags
from ..tiers.pmemobj import PMemError, PMemUnavailable
from .config import LinkConfig, make_link_config
from .optim import ROW_OPTIMIZERS
from .storage import TABLE_TIERS
from .trainer import LinkTrainer


def build_parser() -> argparse.ArgumentParser:
    d = LinkConfig()
    p = argparse.ArgumentParser(prog="tiered-train --task link", description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("dataset", nargs="?", help="link dataset written by tiered-convert (lightgcn, synthetic-link)")
    a("--task", choices=("link",), default="link", help="link prediction (this command)")
    a("--config", help="YAML/TOML/JSON file of settings; flags given here override it")
    a("--model", help=f"lightgcn, sage, or package.module:Class built as Class(in_dim, dim, "
                      f"num_layers) with forward(x, blocks) -> one row per seed [{d.model}]")
    a("--layers", type=int, help=f"propagation layers, 1..6 [{d.layers}]")
    a("--dim", type=int, help=f"embedding dimension [{d.dim}]")
    a("--fanouts", help="neighbours sampled per hop, nearest first; -1 takes all [all]")
    a("--batch-size", type=int, help=f"positive interactions per batch [{d.batch_size}]")
    a("--epochs", type=int, help=f"training epochs [{d.epochs}]")
    a("--lr", type=float, help=f"learning rate of the table (and of model weights) [{d.lr}]")
    a("--lr-decay", type=float, help=f"learning rate of epoch e = lr * lr_decay ** e [{d.lr_decay}]")
    a("--optimizer", choices=sorted(ROW_OPTIMIZERS), help=f"row optimizer of the table [{d.optimizer}]")
    a("--reg", type=float, help=f"L2 weight on the batch's layer-0 embeddings [{d.reg}]")
    a("--num-neg", type=int, help=f"negative candidates per positive; > 1 keeps the hardest "
                                  f"[{d.num_neg}]")
    a("--init-std", type=float, help=f"std of the normal initial embeddings [{d.init_std}]")
    a("--use-features", action="store_true", default=None,
      help="concatenate the dataset's node features to the embeddings (sage / custom models)")
    a("--embeddings-on", choices=TABLE_TIERS, help=f"tier of the table [{d.embeddings_on}]")
    a("--table-dir", help="directory for the table file on the SSD [beside the dataset]")
    a("--pmem", help="PATH:SIZE of a persistent-memory pool for --embeddings-on pmem")
    a("--cache", choices=POLICIES, help=f"DRAM cache policy of the table [{d.cache}]")
    a("--cache-size", help=f"DRAM cache: rows, a share of rows (25%%) or bytes [{d.cache_size}%]")
    a("--superbatch", type=int, help=f"batches sampled and planned together [{d.superbatch}]")
    a("--seed", type=int, help=f"seed of initialisation, shuffling and sampling [{d.seed}]")
    a("--eval-every", type=int, help=f"evaluate every N epochs [{d.eval_every}]")
    a("--topk", type=int, help=f"K of recall@K and ndcg@K [{d.topk}]")
    a("--eval-batch-size", type=int, help=f"seeds per batch of sampled inference [{d.eval_batch_size}]")
    a("--max-scores", type=int, help=f"user x item scores held at once when ranking [{d.max_scores}]")
    a("--time-limit", type=float, help="stop after the epoch that passes this many seconds of "
                                       "training [none]")
    a("--target-recall", type=float, help="stop after the first evaluation whose recall@K reaches "
                                          "this [none]")
    a("--metrics", help="append one JSON object per epoch to this file")
    a("--no-progress", dest="progress", action="store_false", default=None,
      help="no progress bars or per-epoch lines")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    kw = vars(build_parser().parse_args(join_list_flags(argv, ("--fanouts",))))
    kw.pop("task")
    config_file = kw.pop("config")
    try:
        cfg = make_link_config(config_file, **kw)
        trainer = LinkTrainer(cfg)
    except (FileNotFoundError, ValueError, TypeError, PMemError, PMemUnavailable) as e:
        print(f"tiered-train: error: {e}", file=sys.stderr)
        return 2
    try:
        trainer.fit()
        print(trainer.summary())
    except KeyboardInterrupt:
        return 130
    finally:
        trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
