"""tiered: out-of-core GNN training over DRAM, persistent memory and SSD tiers."""
from .dataset import Dataset, open_dataset, verify_dataset
from .format import ArrayLayout, ArrayWriter, FormatError, write_array, write_group_metadata

__version__ = "0.1.0"
__all__ = ["Dataset", "open_dataset", "verify_dataset", "ArrayLayout", "ArrayWriter",
           "FormatError", "write_array", "write_group_metadata", "__version__"]
