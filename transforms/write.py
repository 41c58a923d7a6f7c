"""Write shards and dead letters: to a temporary name, then rename.

A shard's bytes depend only on its examples (sorted by key), so two runs of
the same config write identical files. Readers never see a half-written
shard: files appear under their final name only when complete, and the
version as a whole only counts once `manifest.json` exists.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from typing import Iterable, Mapping

import apache_beam as beam
import numpy as np

from schemas import Schema
from transforms.codec import arrow_table, frame_tfrecords, serialize_examples
from transforms.examples import KeyedExamples
from transforms.read import DeadLetter

FORMATS = ("tfrecord", "parquet")
TFRECORD_COMPRESSIONS = ("none", "gzip")
_CHUNK = 2048


def shard_name(objective: str, shard: int, num_shards: int, fmt: str, compression: str = "none") -> str:
    suffix = ".parquet" if fmt == "parquet" else ".tfrecord" + (".gz" if compression == "gzip" else "")
    return f"{objective}-{shard:05d}-of-{num_shards:05d}{suffix}"


def join(*parts: str) -> str:
    """Join path parts with '/', which every Beam filesystem (local and gs://) accepts."""
    return "/".join(p.rstrip("/") for p in parts[:-1]) + "/" + parts[-1]


def write_atomically(path: str, chunks: Iterable[bytes]) -> dict:
    """Write `chunks` to a temporary name beside `path`, then rename; return size and sha256."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    directory, name = path.rsplit("/", 1)
    tmp = join(directory, f".tmp-{uuid.uuid4().hex}-{name}")
    digest, size = hashlib.sha256(), 0
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as out:
        for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    FileSystems.rename([tmp], [path])
    return {"bytes": size, "sha256": digest.hexdigest()}


def _tfrecord_chunks(examples: KeyedExamples, schema: Schema, compression: str) -> Iterable[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if compression == "gzip" else None  # gzip, mtime 0
    n = examples.keys.shape[0]
    for start in range(0, n, _CHUNK):
        part = {k: v[start : start + _CHUNK] for k, v in examples.features.items()}
        framed = frame_tfrecords(serialize_examples(part, schema))
        yield compressor.compress(framed) if compressor else framed
    if compressor:
        yield compressor.flush()


def _parquet_bytes(examples: KeyedExamples, schema: Schema):
    """The whole Parquet file in memory (row groups of about 8 MiB), written out in one call.

    Letting pyarrow write page by page through a Python file object costs
    more than the encoding itself.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    row_bytes = sum(f.length * 4 for f in schema.features)
    rows_per_group = max(1, (8 << 20) // row_bytes)
    sink = pa.BufferOutputStream()
    # No dictionaries (token ids are not repetitive enough) and no column statistics (min/max of token ids help no reader).
    with pq.ParquetWriter(sink, schema.arrow_schema(), compression="zstd", use_dictionary=False, write_statistics=False) as writer:
        n = examples.keys.shape[0]
        for start in range(0, n, rows_per_group):
            part = {k: v[start : start + rows_per_group] for k, v in examples.features.items()}
            writer.write_table(arrow_table(part, schema), row_group_size=rows_per_group)
    return sink.getvalue()


def empty_features(schema: Schema) -> dict[str, np.ndarray]:
    return {f.name: np.zeros((0, f.length), dtype=f.numpy_dtype) for f in schema.features}


def count_tokens(features: Mapping[str, np.ndarray], schema: Schema, pad: int) -> int:
    return int(sum(np.count_nonzero(features[f.name] != pad) for f in schema.features if f.counts_tokens))


class WriteShard(beam.DoFn):
    """((split, shard), [Stored KeyedExamples]) in; one stats dict per format written out."""

    def __init__(self, schema: Schema, version_dir: str, formats: tuple[str, ...], compression: str, num_shards: Mapping[str, int], pad: int):
        self._schema = schema
        self._version_dir = version_dir
        self._formats = formats
        self._compression = compression
        self._num_shards = dict(num_shards)
        self._pad = pad

    def process(self, element):
        (split, shard), parts = element
        yield from self.write(split, shard, KeyedExamples.concat_sorted((p.unpack() for p in parts), self._schema.names))

    def write(self, split: str, shard: int, examples: KeyedExamples):
        if not examples.features:
            examples = KeyedExamples(examples.keys, empty_features(self._schema))
        stats = {
            "split": split,
            "shard": shard,
            "examples": int(examples.keys.size),
            "tokens": count_tokens(examples.features, self._schema, self._pad),
        }
        for fmt in self._formats:
            relative = f"{split}/{shard_name(self._schema.objective, shard, self._num_shards[split], fmt, self._compression)}"
            path = join(self._version_dir, relative)
            if fmt == "tfrecord":
                written = write_atomically(path, _tfrecord_chunks(examples, self._schema, self._compression))
            else:
                written = write_atomically(path, [_parquet_bytes(examples, self._schema)])
            yield {"path": relative, "format": fmt, **stats, **written}


class WriteEmptyShards(WriteShard):
    """(split, shard) in, with the stats of the shards written; an empty shard for each that got no example.

    Only tiny corpora leave shards empty. Writing them here, rather than
    sending an empty element for every shard through the examples' shuffle,
    keeps that shuffle a plain GroupByKey (no Flatten stage re-reading all
    the examples on the way).
    """

    def process(self, key, written):
        split, shard = key
        if (split, shard) not in {(s["split"], s["shard"]) for s in written}:
            yield from self.write(split, shard, KeyedExamples(np.zeros(0, np.uint64), {}))


class WriteDeadLetters(beam.DoFn):
    """(reason, [DeadLetter]) in; `errors/<reason>.jsonl` written, sorted by source and offset."""

    def __init__(self, version_dir: str):
        self._version_dir = version_dir

    def process(self, element):
        reason, letters = element
        ordered = sorted(letters, key=lambda d: (d.source, d.offset, d.raw, d.detail))
        lines = [json.dumps(d.to_json(), sort_keys=True, ensure_ascii=False) for d in ordered]
        relative = f"errors/{reason}.jsonl"
        written = write_atomically(join(self._version_dir, relative), [("\n".join(lines) + "\n").encode("utf-8")])
        yield {"path": relative, "reason": reason, "records": len(lines), **written}


def key_by_reason(letter: DeadLetter):
    return letter.reason, letter
