"""Neighbour sampling over tiers: the sampler, its neighbour cache, and the sampled-batch format."""
from .neighbor_cache import NeighborCache, page_degree_score, page_reads
from .sampled import SampledBatch, SampledSuperbatch
from .sampler import NeighborSampler

__all__ = ["NeighborSampler", "NeighborCache", "page_reads", "page_degree_score",
           "SampledBatch", "SampledSuperbatch"]
