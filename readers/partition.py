"""Which examples each (rank, loader worker) reads in an epoch, and what is left of it after a save: pure planning from per-shard counts.

The epoch's order (`EpochOrder`) is a function of (seed, epoch) alone over
the whole split: the shards laid end to end (stored order, or permuted by
(seed, epoch) when shuffling) make a stream of N examples, cut into windows
of `window` consecutive examples; with shuffling each window's examples are
permuted by (seed, epoch, window). Global position p is the p-th example of
that order.

What is left of an epoch is a sorted set of global positions held as
intervals (`whole_epoch` at its start). Ranks take it in chunks of `chunk`
consecutive positions dealt round-robin: chunk k goes to rank k mod W, and
inside a rank its chunks go round-robin to its loader workers. The last
round is cut evenly so that every rank gets the same count: n = M // W of M
positions (the last M mod W dropped, as `DistributedSampler(drop_last=True)`
does) or ceil(M / W) (positions past the end wrap around to the start).
Every worker reads its chunks in order, so after each worker w of each
rank has yielded y[w] examples, what was consumed is a prefix of what was
left plus the chunks in flight; `left_after` gives the rest, which any
other world size and worker count (`worker_runs`) then divides the same way.
A chunk of the size of a window is one window, read as one record range
(read locality); a random-access reader can take a batch as its chunk.
No torch, no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Sequence

import numpy as np

SHARD_ORDER = 0  # the purposes a seed is drawn for, so that no two draws share a stream
WINDOW_ORDER = 1
DYNAMIC_MASKING = 2
INDEX_SHUFFLE = 3
BUFFER_SHUFFLE = 4


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


def seed_for(seed: int, epoch: int, purpose: int) -> int:
    """A 32-bit seed for a library that takes one integer (Grain, tf.data), drawn from the pair (seed, epoch), never their sum."""
    return int(rng_for(seed, epoch, purpose).integers(2**31))


def shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Stored order without shuffling; with it, a permutation drawn from (seed, epoch)."""
    if not shuffle:
        return np.arange(num_shards)
    return rng_for(seed, epoch, SHARD_ORDER).permutation(num_shards)


def examples_per_rank(total: int, world_size: int, drop_remainder: bool = True) -> int:
    """What each rank yields of `total` positions: total // R, or ceil(total / R) when the remainder is padded by repeating."""
    return total // world_size if drop_remainder else -(-total // world_size)


def worker_span(per_rank: int, num_workers: int, worker: int) -> tuple[int, int]:
    """The part [start, stop) of `per_rank` positions that one of `num_workers` takes (the first ones take one more)."""
    base, extra = divmod(per_rank, num_workers)
    start = worker * base + min(worker, extra)
    return start, start + base + (worker < extra)


class EpochOrder:
    """The order of one epoch over the whole split: global position p → a position of the shard stream, window by window."""

    def __init__(self, counts: Sequence[int], seed: int = 0, epoch: int = 0, shuffle: bool = False, window: int = 4096):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.counts = np.asarray(counts, dtype=np.int64)
        self.total = int(self.counts.sum())
        self.seed, self.epoch, self.shuffle, self.window = seed, epoch, shuffle, window
        self.shards = shard_order(len(self.counts), seed, epoch, shuffle)

    def window_order(self, index: int) -> np.ndarray:
        """Window `index`'s stream offsets (from its start) in the order its global positions take them."""
        size = min(self.window, self.total - index * self.window)
        if not self.shuffle:
            return np.arange(size)
        return rng_for(self.seed, self.epoch, WINDOW_ORDER, index).permutation(size)

    def pieces(self, start: int, stop: int):
        """Global positions [start, stop) cut at window boundaries: (stream start, stream offsets in order) per window touched."""
        while start < stop:
            index = start // self.window
            first = index * self.window
            end = min(stop, first + self.window)
            yield first, self.window_order(index)[start - first : end - first]
            start = end

    def stream_positions(self, start: int, stop: int) -> np.ndarray:
        """The stream positions of global positions [start, stop)."""
        return np.concatenate([[], *(first + offsets for first, offsets in self.pieces(start, stop))]).astype(np.int64)

    def split_indices(self, stream: np.ndarray) -> np.ndarray:
        """The split index (shards in stored order) of each stream position."""
        ends = np.cumsum(self.counts[self.shards])
        slot = np.searchsorted(ends, stream, side="right")
        split_offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        return split_offsets[self.shards[slot]] + stream - (ends[slot] - self.counts[self.shards[slot]])

    def ranges(self, start: int, stop: int) -> list[Range]:
        """Stream positions [start, stop) as record ranges of shards."""
        return stream_ranges(self.counts, self.shards, start, stop)


def whole_epoch(total: int) -> np.ndarray:
    """What is left of an epoch before anything is read: positions [0, total)."""
    return np.array([[0, total]] if total else np.zeros((0, 2)), dtype=np.int64)


def as_intervals(remaining) -> np.ndarray:
    """A saved `remaining` (nested lists) as the int64 [k, 2] array the functions here take."""
    return np.asarray(remaining, dtype=np.int64).reshape(-1, 2)


def _layout(left: int, world_size: int, num_workers: int, chunk: int, drop_remainder: bool):
    """(per rank, full chunks per rank, size of each rank's last cut)."""
    per_rank = examples_per_rank(left, world_size, drop_remainder)
    full = per_rank // chunk
    return per_rank, full, per_rank - full * chunk


def _worker_units(rank: int, worker: int, world_size: int, num_workers: int, chunk: int, full: int, tail: int) -> np.ndarray:
    """The [start, stop) runs, in the order of what is left, that worker `worker` of rank `rank` reads, in reading order."""
    units = np.arange(worker, full, num_workers, dtype=np.int64)
    starts = units * world_size * chunk + rank * chunk
    runs = [np.stack([starts, starts + chunk], axis=1)]
    lo, hi = worker_span(tail, num_workers, (worker - full) % num_workers)
    base = full * world_size * chunk + rank * tail
    if hi > lo:
        runs.append(np.array([[base + lo, base + hi]], dtype=np.int64))
    return np.concatenate(runs)


def _check(world_size: int, rank: int, num_workers: int, worker: int, chunk: int) -> None:
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is not in [0, num_workers={num_workers})")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")


def _wrap(runs: np.ndarray, left: int) -> np.ndarray:
    """Runs of [0, 2·left) folded into [0, left): a run past the end continues from the start."""
    out = []
    for a, b in runs.tolist():
        if a >= left:
            out.append((a - left, b - left))
        elif b > left:
            out.extend([(a, left), (0, b - left)])
        else:
            out.append((a, b))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _to_global(runs: np.ndarray, remaining: np.ndarray) -> np.ndarray:
    """Runs of indices into what is left as runs of global positions (a run is cut where `remaining` has a gap)."""
    lengths = remaining[:, 1] - remaining[:, 0]
    ends = np.cumsum(lengths)
    out = []
    for a, b in runs.tolist():
        i = int(np.searchsorted(ends, a, side="right"))
        while a < b:
            take = min(b, int(ends[i])) - a
            g = int(remaining[i, 0]) + a - int(ends[i] - lengths[i])
            out.append((g, g + take))
            a += take
            i += 1
    return _merged(np.array(out, dtype=np.int64).reshape(-1, 2), sort=False)


def _merged(runs: np.ndarray, sort: bool = True) -> np.ndarray:
    """Runs with touching or (when sorted) overlapping neighbours joined."""
    if sort:
        runs = runs[np.argsort(runs[:, 0], kind="stable")]
    out: list[list[int]] = []
    for a, b in runs.tolist():
        if b <= a:
            continue
        if out and (a == out[-1][1] or (sort and a <= out[-1][1])):
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def worker_count(remaining, world_size: int, num_workers: int, worker: int, chunk: int, drop_remainder: bool = True) -> int:
    """How many positions a worker of any rank reads of what is left (the same on every rank)."""
    left = int((as_intervals(remaining) @ [-1, 1]).sum())
    _, full, tail = _layout(left, world_size, num_workers, chunk, drop_remainder)
    lo, hi = worker_span(tail, num_workers, (worker - full) % num_workers)
    return len(range(worker, full, num_workers)) * chunk + hi - lo


def worker_runs(
    remaining, world_size: int = 1, rank: int = 0, num_workers: int = 1, worker: int = 0, chunk: int = 4096, drop_remainder: bool = True
) -> np.ndarray:
    """The global positions worker `worker` of rank `rank` reads of what is left, as [start, stop) runs in reading order."""
    _check(world_size, rank, num_workers, worker, chunk)
    remaining = as_intervals(remaining)
    left = int((remaining @ [-1, 1]).sum())
    _, full, tail = _layout(left, world_size, num_workers, chunk, drop_remainder)
    runs = _worker_units(rank, worker, world_size, num_workers, chunk, full, tail)
    if left == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return _to_global(_wrap(runs, left), remaining)


def worker_positions(
    remaining, local: np.ndarray, world_size: int = 1, rank: int = 0, num_workers: int = 1, worker: int = 0, chunk: int = 4096, drop_remainder: bool = True
) -> np.ndarray:
    """The global positions of a worker's `local`-th positions (0 = the first it reads): `worker_runs` indexed, computed in closed form."""
    _check(world_size, rank, num_workers, worker, chunk)
    remaining = as_intervals(remaining)
    local = np.asarray(local, dtype=np.int64)
    left = int((remaining @ [-1, 1]).sum())
    _, full, tail = _layout(left, world_size, num_workers, chunk, drop_remainder)
    full_units = len(range(worker, full, num_workers))
    unit, offset = np.divmod(local, chunk)
    lo, _ = worker_span(tail, num_workers, (worker - full) % num_workers)
    index = np.where(
        local < full_units * chunk,
        (worker + unit * num_workers) * world_size * chunk + rank * chunk + offset,
        full * world_size * chunk + rank * tail + lo + local - full_units * chunk,
    ) % max(left, 1)
    lengths = remaining[:, 1] - remaining[:, 0]
    ends = np.cumsum(lengths)
    interval = np.searchsorted(ends, index, side="right")
    return remaining[interval, 0] + index - (ends[interval] - lengths[interval])


def left_after(remaining, consumed, world_size: int, num_workers: int, chunk: int, drop_remainder: bool = True) -> np.ndarray:
    """What is left once worker w of rank r has yielded `consumed[r][w]` of what `worker_runs` gave it (`consumed[w]`: the same on every rank).

    Positions nobody was given (the dropped remainder) stay left, unless
    every worker has read all it was given: then the epoch is over.
    """
    remaining = as_intervals(remaining)
    consumed = np.broadcast_to(np.asarray(consumed, dtype=np.int64), (world_size, num_workers))
    totals = np.array([worker_count(remaining, world_size, num_workers, w, chunk, drop_remainder) for w in range(num_workers)])
    if (consumed > totals).any() or (consumed < 0).any():
        raise ValueError(f"consumed {consumed.tolist()} is not within what each worker reads of this epoch ({totals.tolist()})")
    if (consumed == totals).all():
        return np.zeros((0, 2), dtype=np.int64)
    left = int((remaining @ [-1, 1]).sum())
    _, full, tail = _layout(left, world_size, num_workers, chunk, drop_remainder)
    taken = []
    for rank in range(world_size):
        for worker in range(num_workers):
            runs = _worker_units(rank, worker, world_size, num_workers, chunk, full, tail)
            sizes = runs[:, 1] - runs[:, 0]
            before = np.cumsum(sizes) - sizes
            runs = runs[before < consumed[rank, worker]]
            runs[:, 1] = np.minimum(runs[:, 1], runs[:, 0] + consumed[rank, worker] - before[: len(runs)])
            taken.append(runs)
    taken = _merged(_wrap(np.concatenate(taken), left))
    edges = np.concatenate([[0], taken.ravel(), [left]]).reshape(-1, 2)
    return _to_global(_merged(edges), remaining)


def order_identity(corpus: str, split: str, seed: int, shuffle: bool, window: int, **more: Any) -> dict[str, Any]:
    """What fixes an epoch's order; a saved position is only meaningful under the same one."""
    return {"corpus": corpus, "split": split, "seed": seed, "shuffle": shuffle, "window": window, **more}


def fingerprint(entries: Sequence[dict]) -> str:
    """A short name for a split's shards (their sha256s and counts, in shard order): another build, or an append, has another."""
    text = json.dumps([(e["shard"], e["examples"], e.get("sha256")) for e in entries])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_same_order(saved: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a position saved under another order (corpus, split, seed, shuffling, window ...), naming what differs."""
    changed = {key: (saved.get(key), value) for key, value in now.items() if saved.get(key) != value}
    if changed:
        raise ValueError(f"the saved reader state is for another order (saved, now): {changed}; resume with the same corpus, split and settings")


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
    """The record ranges of the contiguous stretch (rank, worker) reads in `epoch` (the readers' plan until they take `worker_runs`)."""
    _check(world_size, rank, num_workers, worker, 1)
    counts = np.asarray(counts, dtype=np.int64)
    per_rank = examples_per_rank(int(counts.sum()), world_size, drop_remainder)
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
