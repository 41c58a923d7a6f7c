"""tf.data input for TPU/GPU trainers: static shapes from the manifest's parse spec."""

from __future__ import annotations

from readers.manifest import Corpus


def tf_dataset(path: str, split: str = "train", shuffle_files: bool = False, seed: int | None = None, cycle_length: int = 16):
    """A `tf.data.Dataset` of dicts of int64/float32 tensors with fixed lengths.

    Shards interleave (each is already a shuffled sample of the corpus);
    `shuffle_files` also shuffles their order.
    """
    import tensorflow as tf

    corpus = Corpus(path)
    spec = corpus.schema.tf_parse_spec()
    files = tf.data.Dataset.from_tensor_slices(corpus.files(split, "tfrecord"))
    if shuffle_files:
        files = files.shuffle(len(corpus.files(split, "tfrecord")), seed=seed)
    records = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=corpus.tfrecord_compression or ""),
        cycle_length=cycle_length,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return records.map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
