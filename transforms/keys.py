"""Stable keys and seeds: everything random or ordered derives from these.

SPEC §1: randomness comes from the seed, the objective and the keys of what is
processed (a document, a bucket of documents, a copy index) — never from the
worker, the bundle, arrival order or the clock. These functions are the only
place such keys are made.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Iterator

import numpy as np

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SPLIT_SALT = np.uint64(0x5EED5EED0B1EC7ED)


def hash64(data: bytes) -> int:
    """A 64-bit content hash (BLAKE2b), identical on every platform and run."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def name_code(name: str) -> int:
    """A small stable integer for a name (objective, split) used in seeds."""
    return zlib.crc32(name.encode("utf-8"))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, vectorised: a bijection of uint64 that mixes well."""
    z = np.asarray(x, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def unit_interval(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to floats uniform in [0, 1) (top 53 bits)."""
    return (np.asarray(h, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def is_validation(key_hash: np.ndarray, fraction: float) -> np.ndarray:
    """Train/validation split by doc key alone.

    Independent of the seed on purpose: a document stays in the same split
    across rebuilds with different seeds, so validation never leaks into train.
    """
    if fraction <= 0.0:
        return np.zeros(np.shape(key_hash), dtype=bool)
    return unit_interval(splitmix64(np.asarray(key_hash, dtype=np.uint64) ^ _SPLIT_SALT)) < fraction


def bucket_of(key_hash: np.ndarray, seed: int, num_buckets: int) -> np.ndarray:
    """Corpus-wide hash bucket of each document (mixes all input files)."""
    salt = np.uint64(hash64(f"bucket/{seed}".encode()))
    return (splitmix64(np.asarray(key_hash, dtype=np.uint64) ^ salt) % np.uint64(num_buckets)).astype(np.int64)


def example_keys(seed: int, objective: str, split: str, bucket: int, count: int) -> np.ndarray:
    """Distinct 64-bit keys for the `count` examples a bucket produced.

    An example's shard is `key % num_shards` and shards are sorted by key: a
    global shuffle that is the same on every run.
    """
    base = np.uint64(hash64(f"examples/{seed}/{objective}/{split}/{bucket}".encode()))
    with np.errstate(over="ignore"):
        return splitmix64(base + np.arange(count, dtype=np.uint64) * _GOLDEN)


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by the seed and a tuple of stable integer keys."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=seed & _MASK64, spawn_key=tuple(keys))))


def grouped_order(labels: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """An order that brings equal labels together, and each label's (label, start, stop) in it.

    The sort is stable, so each label's items keep their order: taking the
    whole batch in this order once and slicing it gives every label's part,
    with one gather in all rather than one per label.
    """
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if ordered.size else np.zeros(0, np.int64)
    stops = np.r_[starts[1:], ordered.size]
    return order, list(zip(ordered[starts].tolist(), starts.tolist(), stops.tolist()))


def parts_by_label(labels: np.ndarray, batch: Any) -> Iterator[tuple[int, Any]]:
    """`batch` (anything with `take` and `slice`: documents, examples) cut by `labels`: (label, part) in label order, with one gather in all."""
    order, groups = grouped_order(labels)
    grouped = batch.take(order)
    for label, start, stop in groups:
        yield label, grouped.slice(start, stop)
