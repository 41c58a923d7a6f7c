"""Run the objective on each hash bucket (each split apart) and route its examples to shards."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from transforms.counters import emit_counters
from transforms.documents import DocBatch
from transforms.keys import example_keys, grouped_order, is_validation, name_code, rng_for
from transforms.objectives.base import Objective
from transforms.transit import HeldByKey, store

TRAIN, VALIDATION = "train", "validation"


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

    @staticmethod
    def concat_sorted(parts: Iterable["KeyedExamples"], names: list[str]) -> "KeyedExamples":
        """All parts in key order: the same order whatever order the parts arrive in."""
        parts = [p for p in parts if p.keys.size]
        if not parts:
            return KeyedExamples(np.zeros(0, np.uint64), {})
        merged = KeyedExamples.concat(parts)
        order = np.argsort(merged.keys, kind="stable")
        keys = merged.keys[order]
        if np.any(keys[1:] == keys[:-1]):
            raise ValueError("duplicate example keys: two buckets produced the same key")
        return KeyedExamples(keys, {n: merged.features[n][order] for n in names})


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


class MakeExamples(beam.DoFn):
    """(bucket, [Stored DocBatch]) in; ((split, shard), Stored KeyedExamples) out, held to a few large elements per shard.

    A bucket carries both splits, so buckets stay equal in size (runners that
    deal whole keys to workers stay balanced); each split's documents make
    examples on their own, so a random next sentence never crosses splits.
    """

    def __init__(self, objective: Objective, seed: int, validation_fraction: float, num_shards: Mapping[str, int], transit_dir: str):
        self._objective = objective
        self._seed = seed
        self._validation_fraction = validation_fraction
        self._num_shards = dict(num_shards)
        self._transit_dir = transit_dir

    def start_bundle(self):
        self._held = HeldByKey(KeyedExamples.concat)

    def process(self, element):
        bucket, batches = element
        for split, docs in split_documents(DocBatch.concat(b.unpack() for b in batches), self._validation_fraction).items():
            if not docs.num_docs:
                continue
            examples, counters = build_bucket(self._objective, self._seed, split, bucket, docs)
            yield from emit_counters(counters)
            if not examples.keys.size:
                continue
            order, groups = grouped_order(examples.keys % np.uint64(self._num_shards[split]))
            grouped = examples.take(order)
            for s, start, stop in groups:
                yield from store(self._transit_dir, self._held.add((split, s), grouped.slice(start, stop)))

    def finish_bundle(self):
        for key_and_stored in store(self._transit_dir, self._held.drain()):
            yield GlobalWindows.windowed_value(key_and_stored)
