"""Which examples each (rank, loader worker) reads in an epoch: pure planning from the manifest's per-shard counts.

An epoch lays the split's shards end to end in an order (stored order, or a
permutation drawn from (seed, epoch) when shuffling) and numbers the
examples of that stream 0..N-1. Rank r of R takes the positions
[r·n, (r+1)·n) with n = N // R (the last N mod R dropped, as
`DistributedSampler(drop_last=True)` does) or n = ceil(N / R) (positions past
the end wrap around to the start: the first few examples repeat). Worker w of
W of a rank takes a contiguous part of the rank's positions. The parts are
record ranges of shards, so a shard may be shared by several ranks or workers
when there are fewer shards than ranks × workers. No torch, no I/O: tf.data
and Grain readers can use it too.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

SHARD_ORDER = 0  # the purposes a seed is drawn for, so that no two draws share a stream
WINDOW_ORDER = 1
DYNAMIC_MASKING = 2


@dataclasses.dataclass(frozen=True)
class Range:
    """Records [start, stop) of shard `shard` (its index in shard order); `first_index` is the split index of `start`."""

    shard: int
    start: int
    stop: int
    first_index: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def rng_for(seed: int, epoch: int, purpose: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, purpose, keys)."""
    return np.random.default_rng([seed, epoch, purpose, *keys])


def shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Stored order without shuffling; with it, a permutation drawn from (seed, epoch)."""
    if not shuffle:
        return np.arange(num_shards)
    return rng_for(seed, epoch, SHARD_ORDER).permutation(num_shards)


def examples_per_rank(total: int, world_size: int, drop_remainder: bool = True) -> int:
    """What each rank yields in an epoch: N // R, or ceil(N / R) when the remainder is padded by repeating."""
    return total // world_size if drop_remainder else -(-total // world_size)


def worker_span(per_rank: int, num_workers: int, worker: int) -> tuple[int, int]:
    """The part [start, stop) of a rank's positions that one of its loader workers reads (the first ones take one more)."""
    base, extra = divmod(per_rank, num_workers)
    start = worker * base + min(worker, extra)
    return start, start + base + (worker < extra)


def plan(
    counts: Sequence[int],
    world_size: int = 1,
    rank: int = 0,
    num_workers: int = 1,
    worker: int = 0,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = False,
    drop_remainder: bool = True,
) -> list[Range]:
    """The record ranges (rank, worker) reads in `epoch`, in reading order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is not in [0, num_workers={num_workers})")
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    per_rank = examples_per_rank(total, world_size, drop_remainder)
    lo, hi = worker_span(per_rank, num_workers, worker)
    return stream_ranges(counts, shard_order(len(counts), seed, epoch, shuffle), rank * per_rank + lo, rank * per_rank + hi)


def stream_ranges(counts: np.ndarray, order: np.ndarray, start: int, stop: int) -> list[Range]:
    """Positions [start, stop) of the shards laid end to end in `order`, as record ranges (past the end: from the start again)."""
    total = int(counts.sum())
    if stop > start and total == 0:
        raise ValueError("the split holds no examples")
    split_offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ends = np.cumsum(counts[order])
    ranges = []
    position = start
    while position < stop:
        p = position % total
        i = int(np.searchsorted(ends, p, side="right"))
        shard = int(order[i])
        shard_start = int(ends[i]) - int(counts[shard])
        take = min(stop - position, int(ends[i]) - p)
        first = p - shard_start
        ranges.append(Range(shard, first, first + take, int(split_offsets[shard]) + first))
        position += take
    return ranges
