"""Neighbour sampling over tiers: the sampler, its neighbour cache, and the sampled-batch format."""
from .neighbor_cache import NeighborCache, score_degree_ratio, score_sampled
from .sampled import SampledBatch, SampledSuperbatch
from .sampler import NeighborSampler

__all__ = ["NeighborSampler", "NeighborCache", "score_degree_ratio", "score_sampled",
           "SampledBatch", "SampledSuperbatch"]
