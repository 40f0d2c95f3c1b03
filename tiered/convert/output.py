"""Where a conversion writes: a hidden temporary directory beside OUTPUT, checked for disk
space first, verified with `verify_dataset`, and renamed into place only when complete.

The group's zarr.json (what makes a directory a dataset) is written last, and
the temporary name starts with a dot, so an interrupted conversion never
leaves anything that looks like a valid dataset; on any Python-level error
the temporary and scratch directories are removed.
"""
from __future__ import annotations

import os
import resource
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..dataset import verify_dataset
import numpy as np

from ..format import ArrayWriter, write_group_metadata
from ..units import format_size
from .options import ConvertError

# Extra room asked for beyond the estimate (filesystem overhead, chunk padding).
_SPACE_MARGIN = 1.05


@dataclass
class SpaceNeed:
    """Disk a conversion needs: the finished dataset, the peak of its scratch files, and the
    output bytes already written while that peak lasts."""

    output: int
    scratch: int
    alongside: int = 0


class OutputDir:
    """Context manager: a temporary dataset directory and a scratch directory.

    `root` receives the arrays; `scratch` holds bucket and staging files.
    `commit(attrs)` writes the group metadata, verifies, and renames `root` to
    the output path. Leaving the context without commit removes both.
    """

    def __init__(self, output: str | os.PathLike, *, overwrite: bool = False,
                 tmp_dir: str | os.PathLike | None = None):
        self.output = Path(output).absolute()
        self.overwrite = overwrite
        self.tmp_dir = Path(tmp_dir).absolute() if tmp_dir is not None else None
        tag = uuid.uuid4().hex[:8]
        self.root = self.output.parent / f".{self.output.name}.partial-{tag}"
        base = self.tmp_dir if self.tmp_dir is not None else self.output.parent
        self.scratch = base / f".{self.output.name}.scratch-{tag}"
        self.committed = False

    def __enter__(self) -> OutputDir:
        if self.output.exists() and not self.overwrite:
            raise ConvertError(f"{self.output}: already exists (pass --overwrite to replace it)")
        if self.output.exists() and not self.output.is_dir():
            raise ConvertError(f"{self.output}: exists and is not a directory")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.root.mkdir()
        self.scratch.mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        if not self.committed:
            shutil.rmtree(self.root, ignore_errors=True)

    def require_space(self, need: SpaceNeed, what: str) -> None:
        """Fail early, naming the directory and the sizes, when the disk is too small."""
        root_dev, scratch_dev = os.stat(self.root).st_dev, os.stat(self.scratch).st_dev
        if root_dev == scratch_dev:
            checks = [(self.root, max(need.output, need.scratch + need.alongside),
                       f"output {format_size(need.output)}, scratch "
                       f"{format_size(need.scratch)} at its peak")]
        else:
            checks = [(self.root, need.output, f"output {format_size(need.output)}"),
                      (self.scratch, need.scratch, f"scratch {format_size(need.scratch)}")]
        for path, nbytes, parts in checks:
            free = shutil.disk_usage(path).free
            if nbytes * _SPACE_MARGIN > free:
                raise ConvertError(
                    f"not enough disk space for {what}: about {format_size(nbytes)} needed in "
                    f"{path.parent} ({parts}), only {format_size(free)} free; free space, "
                    f"choose another OUTPUT, or put scratch files elsewhere with --tmp-dir")

    def commit(self, attrs: dict) -> Path:
        """Write the group metadata, verify the whole dataset, rename it into place."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        write_group_metadata(self.root, attrs)
        problems = verify_dataset(self.root)
        if problems:
            raise ConvertError("the converted dataset failed verification:\n  "
                               + "\n  ".join(problems))
        old = None
        if self.output.exists():
            old = self.output.parent / f".{self.output.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.output, old)
        os.rename(self.root, self.output)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.output


def array_bytes(root: Path) -> dict[str, int]:
    """Bytes on disk of each array of a dataset directory (chunk files and metadata)."""
    out = {}
    for child in sorted(Path(root).iterdir()):
        if child.is_dir() and (child / "zarr.json").is_file():
            out[child.name] = sum(p.stat().st_size for p in child.rglob("*") if p.is_file())
    return out


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class ConvertSummary:
    """What a conversion produced, printed at the end and returned by the Python API."""

    path: str
    format: str
    task: str
    num_nodes: int
    num_edges: int
    degree_min: int
    degree_max: int
    degree_mean: float
    feature_dim: int
    feature_dtype: str
    num_classes: int
    split_sizes: dict[str, int]
    array_bytes: dict[str, int]
    seconds: float
    stage_seconds: dict[str, float]
    peak_rss_bytes: int
    memory_limit: int
    extra: dict = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.array_bytes.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        return d

    def format_text(self) -> str:
        lines = [f"{self.path}  ({self.format} -> task={self.task})",
                 f"  nodes {self.num_nodes:,}   edges {self.num_edges:,}   in-degree "
                 f"min {self.degree_min:,} / mean {self.degree_mean:.2f} / max "
                 f"{self.degree_max:,}"]
        if self.feature_dim:
            lines.append(f"  features {self.feature_dim} x {self.feature_dtype}")
        if self.task == "node":
            lines.append(f"  classes {self.num_classes}")
        for key, value in self.extra.items():
            lines.append(f"  {key} {value:,}" if isinstance(value, int) else f"  {key} {value}")
        if self.split_sizes:
            lines.append("  splits " + ", ".join(f"{k} {v:,}" for k, v in self.split_sizes.items()))
        lines.append("  arrays " + ", ".join(f"{k} {format_size(v)}"
                                             for k, v in self.array_bytes.items()))
        lines.append(f"  written {format_size(self.total_bytes)} in {self.seconds:.1f} s ("
                     + ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items())
                     + f"); peak RSS {format_size(self.peak_rss_bytes)} of limit "
                     f"{format_size(self.memory_limit)}")
        return "\n".join(lines)


class Stages:
    """Wall time per named stage of a conversion."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._t = self.start

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._t
        self._t = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


class ScratchArray:
    """An array of unknown final length: rows appended to a raw scratch file, then copied
    into the dataset once the length is known (the format needs shapes up front)."""

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...] = ()):
        self.path, self.dtype, self.row_shape = Path(path), np.dtype(dtype), tuple(row_shape)
        self.file = open(self.path, "wb")
        self.length = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: rows of shape {block.shape[1:]}, "
                             f"expected {self.row_shape}")
        if block.size:
            self.file.write(memoryview(block).cast("B"))
        self.length += len(block)

    def copy_into(self, root: Path, name: str, chunk_bytes: int, block_bytes: int) -> None:
        """Write the collected rows as array `name` of the dataset at `root`; drop the file."""
        self.file.close()
        row_bytes = self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        step = max(1, block_bytes // row_bytes)
        with ArrayWriter(root, name, (self.length,) + self.row_shape, self.dtype,
                         chunk_bytes) as w, open(self.path, "rb") as f:
            for _ in range(0, self.length, step):
                data = np.frombuffer(f.read(step * row_bytes), self.dtype)
                w.write(data.reshape((-1,) + self.row_shape))
        self.path.unlink()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

