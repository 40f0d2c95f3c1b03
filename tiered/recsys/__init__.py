"""GNN recommenders on tiers: link prediction on user-item graphs with learnable embedding tables
larger than DRAM (LightGCN, a GraphSAGE/PinSAGE-style encoder, BPR, recall/ndcg@K)."""
from .config import LinkConfig, make_link_config
from .embedding import EmbeddingTable, TableStats, io_counts
from .graph import Graph
from .loss import PairBatch, bpr_loss
from .metrics import InteractionIndex, RankingMetrics, evaluate_ranking
from .models import LightGCN, SAGERecommender, build_link_model
from .optim import RowAdagrad, RowOptimizer, SparseAdam, make_row_optimizer
from .storage import create_table, normal_rows
from .trainer import LinkEpoch, LinkTrainer

__all__ = ["LinkConfig", "make_link_config", "EmbeddingTable", "TableStats", "io_counts", "Graph",
           "PairBatch", "bpr_loss", "InteractionIndex", "RankingMetrics", "evaluate_ranking",
           "LightGCN", "SAGERecommender", "build_link_model", "RowAdagrad", "RowOptimizer",
           "SparseAdam", "make_row_optimizer", "create_table", "normal_rows", "LinkEpoch",
           "LinkTrainer"]
