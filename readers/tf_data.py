"""tf.data input for TPU/GPU trainers: each host reads its own part of a split, with the manifest's static shapes.

Which records a host reads is `readers.partition.plan`'s answer for
(num_hosts, host_index, seed, epoch): the split's shards laid end to end (in
an order drawn from (seed, epoch) when shuffling), every host taking an
equal, contiguous stretch (the last N mod hosts examples dropped), so a
shard is split by record when there are fewer shards than hosts. Each
stretch is read as `TFRecordDataset(file).skip(start).take(n)`; TensorFlow
checks every record's CRCs, and a stretch that ends early (a corrupt or
cut-short shard) fails with an error naming the file. The dataset is made
only of tf.data ops, so `tf.train.Checkpoint(iterator=...)` saves and
restores its position.
"""

from __future__ import annotations

import numpy as np

from readers.manifest import Corpus
from transforms.extras import import_extra
from readers.partition import WINDOW_ORDER, plan, rng_for


def host_ranges(counts, num_hosts: int, host_index: int, seed: int, epochs: range, shuffle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shard, start, count) of every record range one host reads over `epochs`, in reading order."""
    ranges = [r for e in epochs for r in plan(counts, world_size=num_hosts, rank=host_index, seed=seed, epoch=e, shuffle=shuffle)]
    return (
        np.array([r.shard for r in ranges], dtype=np.int64),
        np.array([r.start for r in ranges], dtype=np.int64),
        np.array([r.size for r in ranges], dtype=np.int64),
    )


def tf_dataset(
    path: str,
    split: str = "train",
    *,
    input_context=None,
    num_hosts: int | None = None,
    host_index: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    num_epochs: int = 1,
    shuffle_buffer: int = 0,
    batch_size: int | None = None,
    drop_remainder: bool = True,
):
    """A `tf.data.Dataset` of dicts of int64/float32 tensors with fixed lengths: this host's part of `split`.

    The host is `input_context` (a `tf.distribute.InputContext`, as
    `strategy.distribute_datasets_from_function` passes) or
    `num_hosts`/`host_index`; by default the one host reads everything.
    Epochs `epoch` .. `epoch + num_epochs - 1` follow each other; with
    `shuffle`, each draws its shard order from (seed, epoch), and a
    `shuffle_buffer` > 0 shuffles examples in a buffer of that many (seeded
    by (seed, epoch)). With `batch_size`, batches are parsed at once and,
    with `drop_remainder` (the default), have fully defined shapes, as TPUs
    need. Records come in the plan's order, the same on every run.
    """
    tf = import_extra("tensorflow", "readers.tf_data")
    if input_context is not None:
        if num_hosts is not None or host_index is not None:
            raise ValueError("pass input_context or num_hosts/host_index, not both")
        num_hosts, host_index = input_context.num_input_pipelines, input_context.input_pipeline_id
    num_hosts = 1 if num_hosts is None else num_hosts
    host_index = 0 if host_index is None else host_index
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, got {num_epochs}")

    corpus = Corpus(path)
    shards = corpus.shards(split, "tfrecord")
    spec = corpus.schema.tf_parse_spec()
    compression = corpus.tfrecord_compression or ""
    shard, start, count = host_ranges([s.examples for s in shards], num_hosts, host_index, seed, range(epoch, epoch + num_epochs), shuffle)
    files = tf.constant([s.path for s in shards])

    def read_range(shard, start, count):
        file = tf.gather(files, shard)
        records = tf.data.TFRecordDataset(file, compression_type=compression).skip(start).take(count).ignore_errors()
        end = tf.data.Dataset.from_tensors((tf.constant(b""), True))
        return records.map(lambda r: (r, False)).concatenate(end).enumerate().map(
            lambda i, item: _checked(i, item, count, file)
        ).filter(lambda record, is_end: tf.logical_not(is_end)).map(lambda record, is_end: record)

    records = tf.data.Dataset.from_tensor_slices((shard, start, count)).flat_map(read_range)
    if shuffle_buffer > 0:
        buffer_seed = int(rng_for(seed, epoch, WINDOW_ORDER).integers(2**31))
        records = records.shuffle(shuffle_buffer, seed=buffer_seed, reshuffle_each_iteration=False)
    if batch_size is None:
        return records.map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = records.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _checked(position, item, count, file):
    """Pass a record through; at the end marker, fail naming `file` unless the range gave all `count` records."""
    import tensorflow as tf

    record, is_end = item
    whole = tf.logical_or(tf.logical_not(is_end), tf.equal(position, count))
    message = tf.strings.format("{}: the shard is corrupt or cut short: a record range gave {} of its {} records", (file, position, count))
    with tf.control_dependencies([tf.debugging.Assert(whole, [message])]):
        return tf.identity(record), is_end
