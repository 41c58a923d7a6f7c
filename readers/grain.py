"""Grain input for JAX trainers: random access to a split's examples, a global shuffle, per-process slices, resumable.

`SplitSource` reads examples by their index in the split (shards laid end
to end in shard order) from the ArrayRecord shards, or from the Parquet
shards (a few decoded row groups cached) when the version has no
ArrayRecord. `grain_dataset` builds the pipeline MaxText's Grain input
sets the standard for: each epoch a global index shuffle seeded from the pair
(seed, epoch) (Grain's index shuffle, which draws no permutation array;
never seed + epoch, which would give seed 1 the orders of seed 0 shifted); each
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
from readers.partition import INDEX_SHUFFLE, examples_per_rank, seed_for
from readers.records import ParquetFiles, decode_examples
from transforms.extras import import_extra

FOREVER = 1 << 30  # the epochs of num_epochs=None (Grain ranges are lazy)


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
    dtype=None,
):
    """A `grain.IterDataset` of batches `{feature: [batch_size, length]}`: this process's part of epochs `epoch` ...

    Each epoch is shuffled as a whole (by (seed, epoch)) unless `shuffle` is
    False; this process (`process_index` of `process_count`, by default
    JAX's) takes positions [i·n, (i+1)·n) of it, n = N // processes, in
    batches of `batch_size` (the last partial batch of an epoch dropped, so
    every batch has the same shape). `num_epochs=None` repeats forever.
    `iter(ds)` gives an iterator with `get_state()` / `set_state(state)`.
    `dtype` (e.g. `np.int64`, what PyTorch code takes) casts the integer
    features; by default they stay int32. Shapes stay static.
    """
    grain = import_extra("grain", "readers.grain")
    from grain.experimental import index_shuffle

    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    source = SplitSource(path, split, fmt)
    total = len(source)
    per_process = examples_per_rank(total, process_count)
    if per_process < batch_size:
        raise ValueError(f"batch_size {batch_size} is more than the {per_process} examples each of {process_count} processes gets per epoch")
    per_epoch = per_process // batch_size * batch_size
    first = process_index * per_process

    def split_index(k: int) -> int:
        """The k-th example this process reads from epoch `epoch` on: its epoch's order is Grain's index shuffle seeded from the pair (seed, epoch)."""
        e, position = divmod(k, per_epoch)
        position += first
        if not shuffle:
            return position
        return int(index_shuffle(position, max_index=total - 1, seed=seed_for(seed, epoch + e, INDEX_SHUFFLE), rounds=4))

    epochs = FOREVER if num_epochs is None else num_epochs
    indices = grain.MapDataset.range(per_epoch * epochs).map(split_index)
    batches = indices.batch(batch_size, drop_remainder=True, batch_fn=np.asarray).map(lambda batch: _as_dtype(source.read_batch(batch), dtype))
    return batches.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_buffer_size))


def _as_dtype(batch: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    """Integer features in `dtype` (None: the schema's int32); float features stay float32."""
    if dtype is None:
        return batch
    return {name: values.astype(dtype) if values.dtype.kind == "i" else values for name, values in batch.items()}
