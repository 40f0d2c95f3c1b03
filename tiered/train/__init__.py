"""Training on tiers: the loader (batches through the executor), the Trainer, settings, CLI."""
from .config import TrainConfig, make_config, read_config_file
from .loader import BudgetError, NodeLoader, Placement
from .trainer import EXPECTED_SIGNATURE, EpochResult, ModelInterfaceError, Trainer, call_style

__all__ = ["TrainConfig", "make_config", "read_config_file", "NodeLoader", "Placement",
           "BudgetError", "Trainer", "EpochResult", "ModelInterfaceError", "call_style",
           "EXPECTED_SIGNATURE"]
