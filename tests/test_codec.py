"""The bulk tf.train.Example encoder and TFRecord framing, checked by TensorFlow's own parsers."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import FLOAT, Feature, Schema
from transforms.codec import arrow_table, frame_tfrecords, serialize_examples


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


SCHEMA = Schema("test", (Feature("input_ids", 33, counts_tokens=True), Feature("weights", 5, FLOAT), Feature("label", 1)))


def random_batch(n, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 2**31 - 1, size=(n, 33)).astype(np.int32)
    ids[:, :6] = [0, 1, 127, 128, 16383, 16384]  # varint length boundaries
    ids[0, 6] = -1  # negative ints take ten bytes as int64
    return {
        "input_ids": ids,
        "weights": rng.standard_normal((n, 5)).astype(np.float32),
        "label": rng.integers(0, 2, size=(n, 1)).astype(np.int32),
    }


def test_tensorflow_parses_every_value_back(tf):
    features = random_batch(300)
    records = serialize_examples(features, SCHEMA)
    parsed = tf.io.parse_example(records, SCHEMA.tf_parse_spec())
    for name, values in features.items():
        assert np.array_equal(parsed[name].numpy(), values), name


def test_messages_match_protobufs_own_encoding(tf):
    features = random_batch(3, seed=1)
    records = serialize_examples(features, SCHEMA)
    for i in range(3):
        ours = tf.train.Example.FromString(records[i])
        theirs = tf.train.Example(
            features=tf.train.Features(
                feature={
                    "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=features["input_ids"][i])),
                    "weights": tf.train.Feature(float_list=tf.train.FloatList(value=features["weights"][i])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=features["label"][i])),
                }
            )
        )
        assert ours == theirs
        assert len(records[i]) == theirs.ByteSize()


@pytest.mark.parametrize("gzip", [False, True])
def test_framed_records_pass_tensorflows_crc_checks(tf, tmp_path, gzip):
    import zlib

    features = random_batch(50)
    framed = frame_tfrecords(serialize_examples(features, SCHEMA))
    path = tmp_path / "x.tfrecord"
    path.write_bytes(zlib.compress(framed, wbits=31) if gzip else framed)
    ds = tf.data.TFRecordDataset(str(path), compression_type="GZIP" if gzip else "")
    parsed = next(iter(ds.batch(100).map(lambda r: tf.io.parse_example(r, SCHEMA.tf_parse_spec()))))
    assert np.array_equal(parsed["input_ids"].numpy(), features["input_ids"])
    corrupted = bytearray(framed)
    corrupted[40] ^= 1
    path.write_bytes(bytes(corrupted))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path)))


def test_arrow_table_has_fixed_size_list_columns():
    features = random_batch(10)
    table = arrow_table(features, SCHEMA)
    assert table.schema == SCHEMA.arrow_schema()
    assert str(table.schema.field("input_ids").type) == "fixed_size_list<item: int32 not null>[33]"
    assert np.array_equal(np.stack(table.column("weights").to_numpy(zero_copy_only=False)), features["weights"])


def test_schema_rejects_wrong_shapes():
    features = random_batch(2)
    features["label"] = features["label"].astype(np.int64)
    with pytest.raises(ValueError, match="label"):
        serialize_examples(features, SCHEMA)
