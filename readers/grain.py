"""Grain input for JAX trainers: random access to a split's examples, a global shuffle, per-process slices, resumable.

`SplitSource` reads examples by their index in the split (shards laid end
to end in shard order) from the ArrayRecord shards, or from the Parquet
shards (a few decoded row groups cached) when the version has no
ArrayRecord. `grain_dataset` builds the pipeline MaxText's Grain input
sets the standard for: each epoch a global index shuffle seeded by
(seed, epoch) (Grain's `shuffle`, which draws no permutation array); each
process takes an equal contiguous slice of the epoch (the last N mod
processes dropped, as `readers.partition` plans); batches of split indices
are read and decoded a batch at a time into static shapes. Its iterator's
state is the next batch's number (`get_state` / `set_state`), so it is
saved with the model's checkpoint and a restored iterator continues exactly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from readers.array_record import ArrayRecordFiles
from readers.manifest import Corpus
from readers.partition import examples_per_rank
from readers.records import ParquetFiles, decode_examples
from transforms.extras import import_extra


class SplitSource:
    """A split's examples by index: `read_batch(indices)` → `{feature: [n, length]}` in the schema's dtypes.

    Also a Grain `RandomAccessDataSource` (`len`, `source[i]` → one
    example), for `grain.DataLoader` with an `IndexSampler`. `fmt` is
    `array_record`, `parquet`, or None: ArrayRecord when the version has it;
    `cached_row_groups` decoded Parquet row groups are kept.
    """

    def __init__(self, path: str, split: str = "train", fmt: str | None = None, cached_row_groups: int = 8):
        self.corpus = corpus = Corpus(path)
        formats = {s["format"] for s in corpus.manifest["shards"]}
        self.format = fmt or ("array_record" if "array_record" in formats else "parquet")
        if self.format not in ("array_record", "parquet"):
            raise ValueError(f"fmt must be array_record or parquet (random access), got {fmt!r}")
        self.schema = corpus.schema
        shards = corpus.shards(split, self.format)
        self.counts = np.array([s.examples for s in shards], dtype=np.int64)
        self.ends = np.cumsum(self.counts)
        paths = [s.path for s in shards]
        self._files = ArrayRecordFiles(paths, self.counts) if self.format == "array_record" else ParquetFiles(paths, self.schema, cached_row_groups)

    def __len__(self) -> int:
        return int(self.ends[-1]) if self.ends.size else 0

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return {name: values[0] for name, values in self.read_batch([index]).items()}

    def read_batch(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"indices must be in [0, {len(self)})")
        shards = np.searchsorted(self.ends, indices, side="right")
        rows = indices - (self.ends[shards] - self.counts[shards])
        out = {f.name: np.empty((indices.size, f.length), f.numpy_dtype) for f in self.schema.features}
        for shard in np.unique(shards).tolist():
            where = np.flatnonzero(shards == shard)
            part = self._read(shard, rows[where])
            for name, values in part.items():
                out[name][where] = values
        return out

    def _read(self, shard: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        if self.format == "parquet":
            return self._files.read(shard, rows)
        records = self._files.read(shard, rows)
        return decode_examples(records, self.schema, self._files.paths[shard], rows.tolist())


def grain_dataset(
    path: str,
    split: str = "train",
    *,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    num_epochs: int | None = 1,
    process_index: int | None = None,
    process_count: int | None = None,
    fmt: str | None = None,
    num_threads: int = 8,
    prefetch_buffer_size: int = 16,
):
    """A `grain.IterDataset` of batches `{feature: [batch_size, length]}`: this process's part of epochs `epoch` ...

    Each epoch is shuffled as a whole (by (seed, epoch)) unless `shuffle` is
    False; this process (`process_index` of `process_count`, by default
    JAX's) takes positions [i·n, (i+1)·n) of it, n = N // processes, in
    batches of `batch_size` (the last partial batch of an epoch dropped, so
    every batch has the same shape). `num_epochs=None` repeats forever.
    `iter(ds)` gives an iterator with `get_state()` / `set_state(state)`.
    """
    grain = import_extra("grain", "readers.grain")
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    source = SplitSource(path, split, fmt)
    per_process = examples_per_rank(len(source), process_count)
    if per_process < batch_size:
        raise ValueError(f"batch_size {batch_size} is more than the {per_process} examples each of {process_count} processes gets per epoch")
    indices = grain.MapDataset.range(len(source))
    if shuffle:
        indices = indices.shuffle(seed=seed)  # epoch e's order: Grain's index shuffle seeded by seed + e
    mine = indices[process_index * per_process : (process_index + 1) * per_process]
    batches = mine.batch(batch_size, drop_remainder=True, batch_fn=np.asarray).map(source.read_batch)
    repeated = batches.repeat(None if num_epochs is None else epoch + num_epochs)
    return repeated[epoch * len(batches) :].to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size))
