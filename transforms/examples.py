"""Run the objective on each hash bucket (each split apart) and route its examples to shards."""

from __future__ import annotations

import dataclasses
import itertools
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Hashable, Iterable, Iterator, Mapping, Protocol, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from transforms.counters import emit_counters
from transforms.documents import DocBatch, route
from transforms.keys import example_keys, is_validation, name_code, parts_by_label, rng_for
from transforms.objectives.base import Objective
from transforms.transit import AHEAD_READS, HOLD_BYTES, HeldByKey, Stored, regroup, store, taken, unpack_ahead

TRAIN, VALIDATION = "train", "validation"
SLICE_BYTES = 1 << 20  # a shard's writer holds one slice of each run it merges


@dataclasses.dataclass
class KeyedExamples:
    """Examples with their 64-bit keys; a shard sorts its examples by key."""

    keys: np.ndarray
    features: dict[str, np.ndarray]

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"keys": self.keys, **{f"feature/{name}": a for name, a in self.features.items()}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "KeyedExamples":
        return cls(arrays.pop("keys"), {name.split("/", 1)[1]: a for name, a in arrays.items()})

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + sum(a.nbytes for a in self.features.values())

    @staticmethod
    def concat(parts: list["KeyedExamples"]) -> "KeyedExamples":
        """All parts, in the order given."""
        return KeyedExamples(np.concatenate([p.keys for p in parts]), {n: np.concatenate([p.features[n] for p in parts]) for n in parts[0].features})

    def take(self, index: np.ndarray) -> "KeyedExamples":
        return KeyedExamples(self.keys[index], {k: v[index] for k, v in self.features.items()})

    def slice(self, start: int, stop: int) -> "KeyedExamples":
        """Examples start to stop, as views."""
        return KeyedExamples(self.keys[start:stop], {k: v[start:stop] for k, v in self.features.items()})

    def in_key_order(self) -> "KeyedExamples":
        """The same examples in key order (the order a shard holds them in)."""
        return self.take(np.argsort(self.keys, kind="stable"))

    def slices(self, rows: int) -> Iterator["KeyedExamples"]:
        """Consecutive pieces of at most `rows` examples (views), none empty."""
        for start in range(0, self.keys.size, rows):
            yield self.slice(start, start + rows)


def in_pieces_of(rows: int, batches: Iterable[KeyedExamples]) -> Iterator[KeyedExamples]:
    """The same examples in the same order, in pieces of exactly `rows` (the last may be shorter).

    A Parquet file's bytes depend on where its row groups start, so the
    writers cut the merged stream at fixed counts, wherever its batches end.
    """
    pending: list[KeyedExamples] = []
    held = 0
    for batch in batches:
        start = 0
        while start < batch.keys.size:
            take = min(rows - held, batch.keys.size - start)
            pending.append(batch.slice(start, start + take))
            held, start = held + take, start + take
            if held == rows:
                yield KeyedExamples.concat(pending) if len(pending) > 1 else pending[0]
                pending, held = [], 0
    if held:
        yield KeyedExamples.concat(pending) if len(pending) > 1 else pending[0]


def sorted_slices(parts: Sequence[KeyedExamples], slice_bytes: int) -> Iterator[KeyedExamples]:
    """The examples of `parts` in key order, in slices of about `slice_bytes`.

    Each slice is gathered from the parts as it is needed, so only one
    slice's copy of the examples exists at a time beside the parts (not a
    merged and then a sorted copy of them all).
    """
    sizes = np.array([p.keys.size for p in parts])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    keys = np.concatenate([p.keys for p in parts])
    order = np.argsort(keys, kind="stable")
    source = np.searchsorted(starts, order, side="right") - 1
    row_bytes = max(1, sum(p.nbytes for p in parts) // max(1, keys.size))
    rows = max(1, slice_bytes // row_bytes)
    for start in range(0, order.size, rows):
        index, part_of = order[start : start + rows], source[start : start + rows]
        features = {name: np.empty((index.size, *a.shape[1:]), a.dtype) for name, a in parts[0].features.items()}
        for j in np.unique(part_of).tolist():
            mine = part_of == j
            rows_in_part = index[mine] - starts[j]
            for name, out in features.items():
                out[mine] = parts[j].features[name][rows_in_part]
        yield KeyedExamples(keys[index], features)


def store_runs(directory: str, parts: Iterable[tuple[Hashable, list[KeyedExamples]]], slice_bytes: int = SLICE_BYTES) -> list[tuple[Hashable, list[Stored]]]:
    """Each key's parts put in key order and stored in slices of about `slice_bytes`: one sorted run per key, as `merge_sorted` reads it.

    The keys must be distinct (as `HeldByKey.drain` gives them).
    """
    sliced = ((key, piece) for key, held in parts for piece in sorted_slices(held, slice_bytes))
    return [(key, [s for _, s in group]) for key, group in itertools.groupby(store(directory, sliced), key=lambda ks: ks[0])]


class Unpackable(Protocol):
    def unpack(self) -> KeyedExamples: ...


def merge_sorted(runs: Sequence[Sequence[Unpackable]], most_rows: int) -> Iterator[KeyedExamples]:
    """The examples of sorted runs (each a sequence of slices in key order), in key order, in batches of at most `most_rows`.

    Only one slice of each run is unpacked at a time, and the next one read
    meanwhile (an object store's reads wait), so memory is bounded by
    (runs x 2 slices) plus a batch, however long the runs are. Each round
    emits the held examples up to the smallest last key among the runs that
    still have slices to come (nothing later can sort before it), or only
    the `most_rows` smallest of them, and takes the next slice of each run
    it used up. The result depends only on the examples, not on how they
    are cut into runs and slices.
    """
    position = [0] * len(runs)
    held: dict[int, KeyedExamples] = {}
    coming: dict[int, tuple[Future, Unpackable]] = {}
    reads = ThreadPoolExecutor(AHEAD_READS)

    def read_next(i: int) -> None:
        if position[i] < len(runs[i]):
            part = runs[i][position[i]]
            coming[i] = (reads.submit(part.unpack), part)
            position[i] += 1

    def advance(i: int) -> None:
        if i in coming:
            held[i] = taken(*coming.pop(i))
            read_next(i)
        else:
            held.pop(i, None)

    with reads:
        for i in range(len(runs)):
            read_next(i)
        for i in sorted(coming):
            advance(i)
        last = None
        while held:
            pending = [held[i].keys[-1] for i in held if i in coming]
            frontier = min(pending) if pending else None
            held_keys = np.concatenate([part.keys for part in held.values()])
            if held_keys.size > most_rows:
                smallest = np.partition(held_keys, most_rows - 1)[most_rows - 1]
                frontier = smallest if frontier is None else min(frontier, smallest)
            emitted = []
            for i in sorted(held):
                part = held[i]
                cut = part.keys.size if frontier is None else int(np.searchsorted(part.keys, frontier, side="right"))
                if cut:
                    emitted.append(part.slice(0, cut))
                if cut == part.keys.size:
                    advance(i)
                else:
                    held[i] = part.slice(cut, part.keys.size)
            batch = KeyedExamples.concat(emitted).in_key_order() if len(emitted) > 1 else emitted[0]
            keys = batch.keys if last is None else np.r_[last, batch.keys]
            if np.any(keys[1:] == keys[:-1]):
                raise ValueError("duplicate example keys: two buckets produced the same key")
            last = batch.keys[-1]
            yield batch


def build_bucket(objective: Objective, seed: int, split: str, bucket: int, docs: DocBatch):
    """The objective's examples and counters for one bucket's documents of a split (in canonical order), with their keys; pure."""
    rng = rng_for(seed, name_code(objective.name), name_code(split), bucket)
    examples = objective.build(docs, rng)
    size = objective.schema.check(examples.features) if examples.features else 0
    keys = example_keys(seed, objective.name, split, bucket, size)
    counters = {"documents_used": docs.num_docs, **{f"objective/{k}": v for k, v in examples.counters.items()}}
    return KeyedExamples(keys, examples.features), counters


def split_documents(docs: DocBatch, validation_fraction: float) -> dict[str, DocBatch]:
    """The documents of each split (by doc key alone, see `is_validation`), each in canonical order."""
    order = docs.canonical_order()
    validation = is_validation(docs.key_hash[order], validation_fraction)
    return {TRAIN: docs.take(order[~validation]), VALIDATION: docs.take(order[validation])}


def shard_groups(examples: KeyedExamples, num_shards: int, shards_per_group: int) -> Iterator[tuple[int, KeyedExamples]]:
    """Examples split by shard (`key % num_shards`), or by group of `shards_per_group` consecutive shards."""
    return parts_by_label(examples.keys % np.uint64(num_shards) // np.uint64(shards_per_group), examples)


class MakeExamples(beam.DoFn):
    """(bucket group, [Stored DocBatch]) in; ((split, shard group), sorted run of Stored KeyedExamples) out, held to a few large elements per group.

    A bucket carries both splits, so buckets stay equal in size (runners that
    deal whole keys to workers stay balanced); each split's documents make
    examples on their own, so a random next sentence never crosses splits.
    A group of several buckets is sorted out into its buckets through a hold
    (`regroup`), bucket by bucket in bucket order.
    """

    def __init__(
        self,
        objective: Objective,
        seed: int,
        validation_fraction: float,
        num_buckets: int,
        buckets_per_group: int,
        num_shards: Mapping[str, int],
        shards_per_group: Mapping[str, int],
        transit_dir: str,
        slice_bytes: int = SLICE_BYTES,
        hold_bytes: int = HOLD_BYTES,
    ):
        self._objective = objective
        self._seed = seed
        self._validation_fraction = validation_fraction
        self._num_buckets = num_buckets
        self._buckets_per_group = buckets_per_group
        self._num_shards = dict(num_shards)
        self._shards_per_group = dict(shards_per_group)
        self._transit_dir = transit_dir
        self._slice_bytes = slice_bytes
        self._hold_bytes = hold_bytes

    def start_bundle(self):
        self._held = HeldByKey(list, self._hold_bytes)  # each key's parts are merged as they are stored (`sorted_slices`)

    def process(self, element):
        for bucket, docs in self._buckets(*element):
            for split, split_docs in split_documents(docs, self._validation_fraction).items():
                if not split_docs.num_docs:
                    continue
                examples, counters = build_bucket(self._objective, self._seed, split, bucket, split_docs)
                yield from emit_counters(counters)
                if not examples.keys.size:
                    continue
                for group, part in shard_groups(examples, self._num_shards[split], self._shards_per_group[split]):
                    yield from store_runs(self._transit_dir, self._held.add((split, group), part), self._slice_bytes)

    def _buckets(self, group: int, batches: Iterable[Stored]) -> Iterator[tuple[int, DocBatch]]:
        if self._buckets_per_group == 1:
            yield group, DocBatch.concat(unpack_ahead(batches))
            return
        by_bucket = regroup(
            batches,
            lambda batch: route(batch, self._seed, self._num_buckets),
            HeldByKey(DocBatch.concat, self._hold_bytes),
            lambda drained: store(self._transit_dir, drained),
        )
        for bucket, spilled, last in by_bucket:
            yield bucket, DocBatch.concat([*unpack_ahead(spilled), *([last] if last is not None else [])])

    def finish_bundle(self):
        for key_and_run in store_runs(self._transit_dir, self._held.drain(), self._slice_bytes):
            yield GlobalWindows.windowed_value(key_and_run)
