"""Shards read without TensorFlow or the `tfrecord` package (`readers.records`): same values as tf.data, corruption named."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from corpus_tools import build, read_tf, sample_subset
from readers.manifest import Corpus
from readers.records import CorruptShard, decode_examples, iter_records, read_parquet, read_tfrecord

OBJECTIVES = {
    "clm": ["--seq-len", 64],
    "mlm": ["--objective", "mlm", "--seq-len", 64, "--masking", "none"],
    "mlm_nsp": ["--objective", "mlm_nsp", "--seq-len", 64],
    "mlm_sop": ["--objective", "mlm_sop", "--seq-len", 64, "--whole-word-mask"],
    "span_corruption": ["--objective", "span_corruption", "--inputs-length", 64],
    "prefix_lm": ["--objective", "prefix_lm", "--inputs-length", 64],
    "prefix_lm_decoder_only": ["--objective", "prefix_lm", "--prefix-layout", "decoder_only", "--inputs-length", 64, "--compression", "gzip"],
    "ul2": ["--objective", "ul2", "--inputs-length", 64],
}


@pytest.fixture(scope="module")
def small_input(tmp_path_factory, sample_docs):
    return sample_subset(tmp_path_factory.mktemp("small-input"), sample_docs)


def _read_all(corpus: Corpus, fmt: str) -> dict[str, np.ndarray]:
    compression = corpus.manifest["config"]["compression"]
    batches = []
    for shard in corpus.shards("train", fmt):
        if fmt == "tfrecord":
            batches += read_tfrecord(shard.path, corpus.schema, None if compression == "none" else compression, batch_size=100)
        else:
            batches += read_parquet(shard.path, corpus.schema)
    return {name: np.concatenate([b[name] for b in batches]) for name in corpus.schema.names}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_both_formats_decode_to_what_tf_data_parses(objective, small_input, tmp_path):
    manifest, version_dir = build(tmp_path, "--input", small_input, "--num-shards", 2, *OBJECTIVES[objective])
    corpus = Corpus(str(tmp_path))
    expected = read_tf(version_dir, manifest)
    for fmt in ("tfrecord", "parquet"):
        got = _read_all(corpus, fmt)
        for feature in corpus.schema.features:
            assert got[feature.name].dtype == feature.numpy_dtype
            np.testing.assert_array_equal(got[feature.name], expected[feature.name], err_msg=f"{fmt} {feature.name}")
    assert [s.examples for s in corpus.shards("train", "parquet")] == [
        s["examples"] for s in sorted(manifest["shards"], key=lambda s: s["path"]) if s["split"] == "train" and s["format"] == "parquet"
    ]


def test_negative_and_wide_ints_and_floats_decode_like_tensorflow():
    import tensorflow as tf

    from schemas import FLOAT, Feature, Schema
    from transforms.codec import serialize_examples

    schema = Schema("t", (Feature("ids", 5), Feature("w", 3, FLOAT)))
    ids = np.array([[0, -1, 127, 128, 2**31 - 1], [-(2**31), 300, 1, 16384, -5]], dtype=np.int32)
    weights = np.array([[0.5, -1.0, 3.25], [0.0, 1e-3, 7.0]], dtype=np.float32)
    records = serialize_examples({"ids": ids, "w": weights}, schema)
    decoded = decode_examples(records, schema)
    parsed = tf.io.parse_example(records, schema.tf_parse_spec())
    np.testing.assert_array_equal(decoded["ids"], parsed["ids"].numpy())
    np.testing.assert_array_equal(decoded["w"], parsed["w"].numpy())


@pytest.fixture(scope="module")
def clm(small_input, tmp_path_factory):
    out = tmp_path_factory.mktemp("clm")
    build(out, "--input", small_input, "--num-shards", 2, "--seq-len", 64)
    return Corpus(str(out))


def test_reading_from_record_k_seeks_to_it(clm):
    shard = clm.shards("train")[1]
    whole = np.concatenate([b["input_ids"] for b in read_tfrecord(shard.path, clm.schema)])
    assert len(whole) == shard.examples
    part = np.concatenate([b["input_ids"] for b in read_tfrecord(shard.path, clm.schema, start=57, stop=190, batch_size=40)])
    np.testing.assert_array_equal(part, whole[57:190])
    rows = np.concatenate([b["input_ids"] for b in read_parquet(shard.path.replace(".tfrecord", ".parquet"), clm.schema, 57, 190)])
    np.testing.assert_array_equal(rows, whole[57:190])


def _record_offsets(path: str) -> list[int]:
    data = open(path, "rb").read()
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + int.from_bytes(data[pos : pos + 8], "little")
    return offsets


def test_a_flipped_byte_names_the_file_and_the_record(clm, tmp_path):
    source = clm.shards("train")[0].path
    broken = tmp_path / "broken.tfrecord"
    data = bytearray(open(source, "rb").read())
    data[_record_offsets(source)[5] + 40] ^= 0x01
    broken.write_bytes(bytes(data))
    with pytest.raises(CorruptShard, match=r"broken\.tfrecord: record 5: the record's data fails its CRC"):
        list(read_tfrecord(str(broken), clm.schema))
    data[_record_offsets(source)[5] + 40] ^= 0x01
    data[_record_offsets(source)[3] + 2] ^= 0x10  # inside record 3's length
    broken.write_bytes(bytes(data))
    with pytest.raises(CorruptShard, match=r"record 3: the record's length fails its CRC"):
        list(iter_records(str(broken)))
    with pytest.raises(CorruptShard, match=r"record 3: the record's length fails its CRC"):
        list(iter_records(str(broken), start=10))


def test_a_shard_cut_short_names_the_file_and_the_record(clm, tmp_path):
    source = clm.shards("train")[0].path
    offsets = _record_offsets(source)
    cut = tmp_path / "cut.tfrecord"
    cut.write_bytes(open(source, "rb").read()[: offsets[7] + 30])
    with pytest.raises(CorruptShard, match=r"cut\.tfrecord: record 7: the shard ends inside this record"):
        list(read_tfrecord(str(cut), clm.schema))
    with pytest.raises(CorruptShard, match=r"record 7: the shard ends inside this record"):
        list(iter_records(str(cut), start=20))
    zipped = tmp_path / "cut.tfrecord.gz"
    zipped.write_bytes(gzip.compress(open(source, "rb").read())[:-2000])
    with pytest.raises(CorruptShard, match=r"cut\.tfrecord\.gz: record \d+: "):
        list(iter_records(str(zipped), "gzip"))


def test_records_holding_other_features_are_refused(clm, tmp_path):
    from schemas import Feature, Schema

    shard = clm.shards("train")[0].path
    longer = Schema("clm", (Feature("input_ids", 65),))
    with pytest.raises(CorruptShard, match=r"record 0: feature 'input_ids' holds 64 values, not 65"):
        next(read_tfrecord(shard, longer))
    missing = Schema("clm", (Feature("targets", 64),))
    with pytest.raises(CorruptShard, match=r"record 0: no feature 'targets'"):
        next(read_tfrecord(shard, missing))
    copy = tmp_path / "copy.tfrecord"
    shutil.copy(shard, copy)
    assert sum(1 for _ in iter_records(str(copy))) == clm.shards("train")[0].examples


def test_the_reading_core_imports_without_torch_beam_or_tensorflow():
    import json
    import subprocess
    import sys

    code = "import json, sys, readers.records, readers.partition, readers.manifest; print(json.dumps(sorted(sys.modules)))"
    loaded = {name.split(".")[0] for name in json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)}
    assert not loaded & {"torch", "apache_beam", "tensorflow", "tfrecord"}
