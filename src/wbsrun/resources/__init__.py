"""Resource manager: pooled items and blobs leased to tasks."""

from wbsrun.resources.pool import PairPool, PoolManager, load_manifest

__all__ = ["PairPool", "PoolManager", "load_manifest"]
