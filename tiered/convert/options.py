"""Options shared by every converter, the error type, and the memory limit they run under."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..format import DEFAULT_CHUNK_BYTES, FEATURE_DTYPES
from ..memory import physical_memory
from ..units import parse_size

# Share of physical memory (or of the cgroup limit) a conversion may use by default.
DEFAULT_MEMORY_FRACTION = 0.5
# Smallest budget accepted: below this, per-block overheads dominate.
MIN_MEMORY_LIMIT = 1 << 16


class ConvertError(ValueError):
    """Bad input or a failed conversion; the message names the file and line (or array)
    and the expected vs found value."""


def default_memory_limit() -> int:
    """The default --memory-limit: a fraction of the RAM this process may use."""
    return int(physical_memory() * DEFAULT_MEMORY_FRACTION)




def parse_memory_limit(text: str) -> int:
    """A --memory-limit: a size such as '12G' or '512MiB', or 'NN%' of physical memory."""
    text = text.strip()
    try:
        if text.endswith("%"):
            return int(physical_memory() * float(text[:-1]) / 100)
        return parse_size(text)
    except ValueError:
        raise ConvertError(f"memory limit {text!r}: expected bytes with an optional unit "
                           f"(e.g. 8G, 512MiB) or a percentage of RAM (e.g. 50%)") from None


@dataclass
class ConvertOptions:
    """How a conversion runs, whatever the input format.

    Graph options left as None take the format's default (see docs/convert.md):
    planetoid makes the graph undirected and simple as the published loaders do,
    recommender and synthetic graphs are deduplicated, other formats keep the
    edges exactly as given.
    """

    memory_limit: int = field(default_factory=default_memory_limit)
    reverse_edges: bool | None = None       # add dst->src for every src->dst
    drop_self_loops: bool | None = None
    dedup: bool | None = None               # keep one copy of repeated edges
    compact_ids: bool = False               # renumber the nodes that occur in edges to 0..n-1
    feature_dtype: str | None = None        # "float32"/"float16"; None: float16 stays, else float32
    tmp_dir: Path | None = None             # scratch space (default: beside OUTPUT)
    overwrite: bool = False
    progress: bool = True
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    name: str | None = None                 # dataset name stored in the attributes

    def __post_init__(self) -> None:
        if self.memory_limit < MIN_MEMORY_LIMIT:
            raise ConvertError(f"memory limit {self.memory_limit} bytes is below the minimum "
                               f"{MIN_MEMORY_LIMIT}")
        if self.feature_dtype is not None and self.feature_dtype not in FEATURE_DTYPES:
            raise ConvertError(f"feature dtype {self.feature_dtype!r}: expected one of "
                               f"{FEATURE_DTYPES}")
        if self.tmp_dir is not None:
            self.tmp_dir = Path(self.tmp_dir)

    def with_defaults(self, **defaults: bool) -> ConvertOptions:
        """A copy where graph options still None take the given format defaults."""
        values = asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        for key in ("reverse_edges", "drop_self_loops", "dedup"):
            if values[key] is None:
                values[key] = False
        return ConvertOptions(**values)

    def record(self) -> dict:
        """The options that shape the dataset, for the dataset's provenance attributes."""
        return {"reverse_edges": bool(self.reverse_edges),
                "drop_self_loops": bool(self.drop_self_loops), "dedup": bool(self.dedup),
                "compact_ids": self.compact_ids, "feature_dtype": self.feature_dtype}
