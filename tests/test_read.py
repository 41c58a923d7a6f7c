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
