"""The reader: ranges partition files exactly, formats and compressions, damage becomes dead letters."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from transforms.read import (
    TRUNCATED_FILE,
    DeadLetter,
    Document,
    InputSpec,
    infer_format,
    plan_ranges,
    read_range,
)

SPEC = InputSpec()


def read_all(path, fmt, compression=None, range_bytes=1 << 30, row_groups=None):
    size = len(open(path, "rb").read())
    out = []
    for rng in plan_ranges(str(path), size, fmt, compression, range_bytes, row_groups):
        out += list(read_range(rng, lambda p: open(p, "rb"), SPEC))
    return out


def test_byte_ranges_read_every_line_exactly_once(tmp_path):
    docs = [{"id": i, "text": "x" * (i % 37 + 1)} for i in range(500)]
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(json.dumps(d).encode() + b"\n" for d in docs))
    for range_bytes in (7, 64, 100, 1000, 1 << 20):
        got = read_all(path, "jsonl", range_bytes=range_bytes)
        assert [d.key for d in got] == [f"id:{i}" for i in range(500)], range_bytes
        assert all(isinstance(d, Document) for d in got)


def test_ranges_only_split_uncompressed_jsonl():
    assert len(plan_ranges("a.jsonl", 1000, "jsonl", None, 100)) == 10
    assert len(plan_ranges("a.jsonl.gz", 1000, "jsonl", "gzip", 100)) == 1
    assert len(plan_ranges("a.txt", 1000, "text", None, 100)) == 1
    assert [(r.start, r.end) for r in plan_ranges("a.parquet", 1000, "parquet", None, 100, 3)] == [(0, 1), (1, 2), (2, 3)]


def test_formats_are_inferred_from_names():
    assert infer_format("gs://b/x/part-0.jsonl.gz") == ("jsonl", "gzip")
    assert infer_format("/d/wiki.txt.zst") == ("text", "zstd")
    assert infer_format("/d/rows.parquet") == ("parquet", None)
    assert infer_format("/d/data.bin.gz", "jsonl") == ("jsonl", "gzip")
    with pytest.raises(ValueError, match="--input-format"):
        infer_format("/d/data.bin")


def test_bert_text_format_documents_are_runs_of_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\n\nOne.\r\nTwo.\n\n\n  \nThree.\nFour.\nFive.\n\nSix.")
    docs = read_all(path, "text")
    assert [d.sentences for d in docs] == [["One.", "Two."], ["Three.", "Four.", "Five."], ["Six."]]
    assert [d.offset for d in docs] == [2, 7, 11]


def test_multi_member_gzip_and_multi_frame_zstd_are_read_whole(tmp_path):
    a, b = b'{"text": "first"}\n', b'{"text": "second"}\n'
    (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress(a) + gzip.compress(b))
    (tmp_path / "m.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(a) + zstandard.ZstdCompressor().compress(b))
    for name, compression in (("m.jsonl.gz", "gzip"), ("m.jsonl.zst", "zstd")):
        assert [d.text for d in read_all(tmp_path / name, "jsonl", compression)] == ["first", "second"]


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_truncated_stream_keeps_what_came_before_and_dead_letters_the_rest(tmp_path, compression):
    # Varied text over several compression blocks (zstd emits nothing of a block it has not fully seen).
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{w}" for w in rng.integers(0, 10**6, size=60)) for _ in range(2000)]
    data = b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)
    packed = gzip.compress(data) if compression == "gzip" else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / "t.jsonl"
    path.write_bytes(packed[: len(packed) // 2])
    got = read_all(path, "jsonl", compression)
    docs, letters = [d for d in got if isinstance(d, Document)], [d for d in got if isinstance(d, DeadLetter)]
    assert [d.reason for d in letters] == [TRUNCATED_FILE]
    assert 0 < len(docs) < 2000
    assert [d.text for d in docs] == texts[: len(docs)]
    assert data.split(b"\n")[len(docs)].startswith(letters[0].raw)


def test_parquet_row_groups_read_as_ranges(tmp_path):
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(10)], "id": list(range(10))}), tmp_path / "r.parquet", row_group_size=3)
    got = read_all(tmp_path / "r.parquet", "parquet", row_groups=4)
    assert [d.text for d in got] == [f"row {i}" for i in range(10)]
    assert [d.offset for d in got] == list(range(10))


def test_documents_without_id_are_keyed_by_content(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "same"}\n{"text": "same"}\n{"text": "other"}\n')
    keys = [d.key for d in read_all(path, "jsonl")]
    assert keys[0] == keys[1] != keys[2] and keys[0].startswith("sha:")


def test_tfrecord_examples_written_by_tensorflow_are_read(tmp_path):
    import tensorflow as tf

    def example(**features):
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    def text(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    records = [
        example(text=text("Première phrase.".encode()), id=text(b"doc-a")),
        example(text=text(b"Second document."), id=tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))),
        example(body=text(b"no text feature")),
        example(text=tf.train.Feature(float_list=tf.train.FloatList(value=[1.0]))),
        example(text=text(b"caf\xe9")),
        b"\x0a\x05\x0a\x03\x0a\x01",  # a message cut short
    ]
    for name, options in (("a.tfrecord", None), ("b.tfrecord.gz", "GZIP")):
        with tf.io.TFRecordWriter(str(tmp_path / name), options=options) as writer:
            for r in records:
                writer.write(r)
    for name, compression in (("a.tfrecord", None), ("b.tfrecord.gz", "gzip")):
        fmt, inferred = infer_format(str(tmp_path / name))
        assert (fmt, inferred) == ("tfrecord", compression)
        got = read_all(tmp_path / name, fmt, compression)
        assert [(d.key, d.text) for d in got[:2]] == [("id:doc-a", "Première phrase."), ("id:7", "Second document.")]
        assert [d.reason for d in got[2:]] == ["missing_text_field", "text_not_string", "invalid_utf8", "malformed_example"]


def test_damaged_tfrecords_dead_letter_the_damage(tmp_path):
    import tensorflow as tf

    good = tmp_path / "good.tfrecord"
    with tf.io.TFRecordWriter(str(good)) as writer:
        for i in range(5):
            writer.write(tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"doc {i}".encode()]))})).SerializeToString())
    data = bytearray(good.read_bytes())
    record_size = len(data) // 5
    data[record_size + 14] ^= 0xFF  # inside the second record's data
    (tmp_path / "flipped.tfrecord").write_bytes(bytes(data))
    (tmp_path / "cut.tfrecord").write_bytes(good.read_bytes()[: record_size * 3 + 10])
    flipped = read_all(tmp_path / "flipped.tfrecord", "tfrecord")
    assert [getattr(d, "reason", d.text if isinstance(d, Document) else None) for d in flipped] == ["doc 0", "corrupt_record", "doc 2", "doc 3", "doc 4"]
    cut = read_all(tmp_path / "cut.tfrecord", "tfrecord")
    assert [d.text for d in cut[:3]] == ["doc 0", "doc 1", "doc 2"] and [d.reason for d in cut[3:]] == [TRUNCATED_FILE]


def test_one_big_compressed_file_is_tokenized_on_every_worker(tmp_path, sample_docs, tokenizer_path):
    """Its batches are dealt to both workers after decompression; the shards are those of reading it on one thread."""
    import os

    from corpus_tools import IN_MEMORY, TWO_PROCESSES, assert_identical_shards, build
    from pipelines.build import BuildCorpus, plan_build, write_tokenizer_copy
    from pipelines.config import BuildConfig
    from runners.local import run

    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for copy in range(2):
            for doc in sample_docs:
                f.write(json.dumps({**doc, "id": f"{doc['id']}-{copy}"}) + "\n")
    assert path.stat().st_size > 1 << 20
    options = dict(inputs=(str(path),), tokenizer=tokenizer_path, num_shards=2, objective_options={"seq_len": 64})
    _, whole = build(tmp_path / "one", "--input", path, "--tokenizer", tokenizer_path, "--num-shards", 2, "--seq-len", 64, "--read-range-mb", 64, runner=IN_MEMORY)

    plan = plan_build(BuildConfig(**options, output=str(tmp_path / "two"), read_range_mb=1))
    progress = tmp_path / "progress"
    progress.mkdir()
    write_tokenizer_copy(plan)
    run(lambda p, _: p | BuildCorpus(plan, str(progress)), TWO_PROCESSES, show_progress=False)
    tokenizing = {name.split("-")[0] for name in os.listdir(progress) if json.loads((progress / name).read_text())["documents"]}
    assert len(tokenizing) == 2, tokenizing
    assert assert_identical_shards(whole, plan.version_dir) == 6


def test_dead_letters_sorted_window_by_window_are_one_sorted_file(tmp_path):
    """Sorted in windows of an input file, then concatenated: the same bytes as sorting all of a reason's letters at once."""
    import random

    import apache_beam as beam

    from transforms.write import DEAD_LETTER_WINDOW_BITS, SortDeadLetters, WriteDeadLetters, key_by_window

    rng = random.Random(0)
    letters = [
        DeadLetter(f"/in/part-{rng.randrange(3)}.jsonl", rng.randrange(8 << DEAD_LETTER_WINDOW_BITS), reason, rng.randbytes(rng.randrange(1, 40)), "why")
        for reason in ("malformed_json", "invalid_utf8")
        for _ in range(500)
    ]
    rng.shuffle(letters)
    version_dir = str(tmp_path / "version")
    with beam.Pipeline() as p:
        (
            p
            | beam.Create(letters)
            | beam.Map(key_by_window)
            | "Windows" >> beam.GroupByKey()
            | beam.ParDo(SortDeadLetters(str(tmp_path / "tmp")))
            | "Reasons" >> beam.GroupByKey()
            | beam.ParDo(WriteDeadLetters(version_dir))
        )
    for reason in ("malformed_json", "invalid_utf8"):
        ordered = sorted((d for d in letters if d.reason == reason), key=lambda d: (d.source, d.offset, d.raw, d.detail))
        expected = "\n".join(json.dumps(d.to_json(), sort_keys=True, ensure_ascii=False) for d in ordered) + "\n"
        assert (tmp_path / "version" / "errors" / f"{reason}.jsonl").read_bytes() == expected.encode("utf-8")
    assert len(list((tmp_path / "tmp").iterdir())) > 16  # sorted in many windows
