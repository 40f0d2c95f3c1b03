"""`lightgcn`: user-item interaction files as published with NGCF/LightGCN
(`user item item ...` per line, one file per split) into a recommender dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import finish_link_dataset
from .edgelist import text_block_bytes
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary, OutputDir, ScratchArray, SpaceNeed, Stages
from .textparse import iter_adjacency


def _stage_file(path: Path, store: ScratchArray, num_users: int | None, num_items: int | None,
                block_bytes: int) -> tuple[int, int]:
    """Parse one interaction file into `store`; returns (max user id, max item id)."""
    max_user = max_item = -1
    for pb in iter_adjacency(path, block_bytes):
        if not len(pb):
            continue
        for ids, limit, what in ((pb.heads, num_users, "user"), (pb.others, num_items, "item")):
            if limit is not None and int(ids.max()) >= limit:
                k = int(np.argmax(ids >= limit))
                raise ConvertError(f"{pb.where(k)}: {what} id {ids[k]} out of range "
                                   f"[0, {limit})")
        max_user = max(max_user, int(pb.heads.max()))
        max_item = max(max_item, int(pb.others.max()))
        store.write(np.stack([pb.heads, pb.others], axis=1))
    return max_user, max_item


def convert_lightgcn(directory: str | Path, output: str | Path, *, train: str = "train.txt",
                     test: str = "test.txt", val: str | None = None,
                     num_users: int | None = None, num_items: int | None = None,
                     options: ConvertOptions | None = None) -> ConvertSummary:
    """Convert LightGCN-style interaction files in `directory` into a link-task dataset.

    Each line is `user item item ...` (0-based ids). Users and items are
    counted as the largest id + 1 over all files unless given. The graph is the
    train interactions in both directions (duplicates merged); the interactions
    of every split are kept as given for evaluation.
    """
    opts = (options or ConvertOptions()).with_defaults(dedup=True)
    directory = Path(directory)
    files = {"train": directory / train, "test": directory / test}
    if val is not None:
        files["val"] = directory / val
    for path in files.values():
        if not path.is_file():
            raise ConvertError(f"{path}: no such interaction file")
    stages = Stages()
    block = text_block_bytes(opts.memory_limit)
    with OutputDir(output, overwrite=opts.overwrite, tmp_dir=opts.tmp_dir) as od:
        size = sum(p.stat().st_size for p in files.values())
        od.require_space(SpaceNeed(output=4 * size, scratch=4 * size, alongside=2 * size),
                         f"converting {directory}")     # text ~ 4-8 bytes per interaction
        stores = {}
        max_user = max_item = -1
        for split, path in files.items():
            stores[split] = ScratchArray(od.scratch / f"{split}.bin", np.int64, (2,))
            mu, mi = _stage_file(path, stores[split], num_users, num_items, block)
            max_user, max_item = max(max_user, mu), max(max_item, mi)
        if stores["train"].length == 0:
            raise ConvertError(f"{files['train']}: no interactions")
        stages.done("parse")
        return finish_link_dataset(
            od, opts, stages, fmt="lightgcn", source=str(directory.absolute()),
            interactions=stores, num_users=num_users or max_user + 1,
            num_items=num_items or max_item + 1,
            extra_attrs={"files": {k: v.name for k, v in files.items()}})
