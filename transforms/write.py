"""Write shards and dead letters: to a temporary name, then rename.

A shard's bytes depend only on its examples (sorted by key), so two runs of
the same config write identical files. Readers never see a half-written
shard: files appear under their final name only when complete, and the
version as a whole only counts once `manifest.json` exists.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import uuid
import zlib
from typing import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np

from schemas import Schema
from transforms.codec import arrow_table, frame_tfrecords, serialize_examples
from transforms.examples import SLICE_BYTES, KeyedExamples, in_pieces_of, merge_sorted, shard_groups, store_runs
from transforms.read import DeadLetter
from transforms.storage import AtomicFile, create_raw, is_remote, join, make_parent, read_blocks, temporary_dir, temporary_name, write_atomically
from transforms.transit import HOLD_BYTES, HeldByKey, Loaded, Stored, regroup, store

FORMATS = ("tfrecord", "parquet", "array_record")
DEFAULT_FORMATS = ("tfrecord", "parquet")
TFRECORD_COMPRESSIONS = ("none", "gzip")
MERGE_BATCH_BYTES = 4 << 20  # examples a merge hands on at once
FAN_IN = 64  # runs a shard's writer merges at once
PARQUET_FLUSH_BYTES = 16 << 20  # a couple of row groups


def shard_name(objective: str, shard: int, num_shards: int, fmt: str, compression: str = "none") -> str:
    if fmt in ("parquet", "array_record"):
        return f"{objective}-{shard:05d}-of-{num_shards:05d}.{fmt}"
    suffix = ".tfrecord" + (".gz" if compression == "gzip" else "")
    return f"{objective}-{shard:05d}-of-{num_shards:05d}{suffix}"


# One record per chunk (group) so a reader decompresses only the record it reads (what Grain's
# ArrayRecordDataSource expects); one writer thread and a fixed zstd level, so the bytes depend only on the records.
ARRAY_RECORD_OPTIONS = "group_size:1,zstd:3,max_parallelism:1"
_COPY_BLOCK = 4 << 20


def row_bytes(schema: Schema) -> int:
    """Bytes of one example's values in memory (all features are 4-byte)."""
    return sum(f.length * f.numpy_dtype.itemsize for f in schema.features)


def parquet_rows_per_group(schema: Schema) -> int:
    """Rows in a Parquet row group: about 8 MiB of values."""
    return max(1, (8 << 20) // row_bytes(schema))


class _Collected:
    """A write-only file object that keeps what pyarrow writes until it is taken."""

    closed = False

    def __init__(self):
        self._pieces: list[bytes] = []
        self.size = self._position = 0

    def write(self, data) -> int:
        self._pieces.append(bytes(data))
        self.size += len(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._pieces, self.size = b"".join(self._pieces), [], 0
        return data


class TFRecordShard:
    """A TFRecord shard written as its records come (gzip's output does not depend on where its input is cut)."""

    def __init__(self, path: str, temporary_dir: str, compression: str):
        self._file = AtomicFile(path, temporary_dir)
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if compression == "gzip" else None  # gzip, mtime 0

    def add(self, examples: KeyedExamples, records: list[bytes]) -> None:
        framed = frame_tfrecords(records)
        self._file.write(self._compressor.compress(framed) if self._compressor else framed)

    def abort(self) -> None:
        self._file.abort()

    def finish(self) -> dict:
        if self._compressor:
            self._file.write(self._compressor.flush())
        return self._file.commit()


class ParquetShard:
    """A Parquet shard written a row group per `add`; the bytes leave in pieces of a few row groups.

    pyarrow writes each row group into memory (`_Collected`): letting it
    write page by page through Beam's file object costs more than the
    encoding itself.
    """

    def __init__(self, path: str, temporary_dir: str, schema: Schema):
        import pyarrow.parquet as pq

        self._file = AtomicFile(path, temporary_dir)
        self._schema = schema
        self._sink = _Collected()
        # No dictionaries (token ids are not repetitive enough) and no column statistics (min/max of token ids help no reader).
        self._writer = pq.ParquetWriter(self._sink, schema.arrow_schema(), compression="zstd", use_dictionary=False, write_statistics=False)

    def add(self, examples: KeyedExamples, records: list[bytes] | None) -> None:
        self._writer.write_table(arrow_table(examples.features, self._schema), row_group_size=parquet_rows_per_group(self._schema))
        if self._sink.size >= PARQUET_FLUSH_BYTES:
            self._file.write(self._sink.take())

    def abort(self) -> None:
        self._file.abort()

    def finish(self) -> dict:
        self._writer.close()
        self._file.write(self._sink.take())
        return self._file.commit()


class ArrayRecordShard:
    """An ArrayRecord shard of the same serialized records as the TFRecord shard, written atomically.

    ArrayRecord's writer only writes local files: a local `path` is written
    under a temporary name in `temporary_dir`, then renamed; a remote one
    (gs://) is written to a local temporary file first, then copied through
    Beam's FileSystems by `write_atomically` (through `temporary_dir` too).
    """

    def __init__(self, path: str, temporary_dir: str):
        from array_record.python.array_record_module import ArrayRecordWriter

        self._path = path
        self._temporary_dir = temporary_dir
        self._remote = is_remote(path)
        self._tmp = temporary_name(tempfile.gettempdir() if self._remote else temporary_dir, path)
        make_parent(self._tmp)
        self._writer = ArrayRecordWriter(self._tmp, ARRAY_RECORD_OPTIONS)

    def add(self, examples: KeyedExamples | None, records: Iterable[bytes]) -> None:
        for record in records:
            self._writer.write(record)

    def abort(self) -> None:
        self._writer.close()
        if self._remote:
            os.remove(self._tmp)

    def finish(self) -> dict:
        self._writer.close()
        try:
            with open(self._tmp, "rb") as f:
                blocks = iter(lambda: f.read(_COPY_BLOCK), b"")
                if self._remote:
                    return write_atomically(self._path, self._temporary_dir, blocks)
                digest, size = hashlib.sha256(), 0
                for block in blocks:
                    digest.update(block)
                    size += len(block)
            make_parent(self._path)
            os.replace(self._tmp, self._path)
            return {"bytes": size, "sha256": digest.hexdigest()}
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)


def write_array_record(path: str, temporary_dir: str, record_chunks: Iterable[Iterable[bytes]]) -> dict:
    """Write the records of `record_chunks` as an ArrayRecord file, atomically through `temporary_dir`; return size and sha256."""
    shard = ArrayRecordShard(path, temporary_dir)
    try:
        for records in record_chunks:
            shard.add(None, records)
    except BaseException:
        shard.abort()
        raise
    return shard.finish()


def count_tokens(features: Mapping[str, np.ndarray], schema: Schema, pad: int) -> int:
    return int(sum(np.count_nonzero(features[f.name] != pad) for f in schema.features if f.counts_tokens))


class WriteShard(beam.DoFn):
    """((split, shard group), [sorted run of Stored KeyedExamples]) in; one stats dict per format written out.

    A group of several shards is first sorted out into its shards through
    a hold (`regroup`), then each shard is written in shard order.

    The runs are merged by key as the file is written (`merge_sorted`), so a
    writer holds one slice of each run and one output buffer, never the
    shard: at most `fan_in` runs are merged at once, and a shard with more
    is first merged `fan_in` runs at a time into longer runs, stored in
    transit like the parts were (a round per factor of `fan_in`). Every
    format is written in the one pass over the merge: each row group is
    serialized once, for the TFRecord and ArrayRecord shards alike.
    """

    def __init__(
        self,
        schema: Schema,
        version_dir: str,
        formats: tuple[str, ...],
        compression: str,
        num_shards: Mapping[str, int],
        pad: int,
        shards_per_group: Mapping[str, int] | None = None,
        slice_bytes: int = SLICE_BYTES,
        fan_in: int = FAN_IN,
        hold_bytes: int = HOLD_BYTES,
    ):
        self._schema = schema
        self._version_dir = version_dir
        self._formats = formats
        self._compression = compression
        self._num_shards = dict(num_shards)
        self._pad = pad
        self._shards_per_group = dict(shards_per_group or {})
        self._slice_bytes = slice_bytes
        self._fan_in = fan_in
        self._hold_bytes = hold_bytes

    def process(self, element):
        (split, group), runs = element
        if self._shards_per_group.get(split, 1) == 1:
            yield from self.write(split, group, self._at_most_fan_in(list(runs)))
            return
        by_shard = regroup(
            itertools.chain.from_iterable(runs),
            lambda examples: shard_groups(examples, self._num_shards[split], 1),
            HeldByKey(list, self._hold_bytes),
            lambda drained: store_runs(temporary_dir(self._version_dir), drained, self._slice_bytes),
        )
        for shard, spilled, last in by_shard:
            held = [[Loaded(KeyedExamples.concat(last).in_key_order())]] if last else []
            yield from self.write(split, shard, self._at_most_fan_in(spilled + held))

    def _at_most_fan_in(self, runs: list[Sequence[Stored]]) -> list[Sequence[Stored]]:
        while len(runs) > self._fan_in:
            runs = [self._stored_run(self._merged(runs[i : i + self._fan_in])) for i in range(0, len(runs), self._fan_in)]
        return runs

    def _merged(self, runs: Sequence[Sequence[Stored]]) -> Iterator[KeyedExamples]:
        return merge_sorted(runs, max(1, MERGE_BATCH_BYTES // row_bytes(self._schema)))

    def _stored_run(self, batches: Iterable[KeyedExamples]) -> list[Stored]:
        pieces = in_pieces_of(max(1, self._slice_bytes // (8 + row_bytes(self._schema))), batches)
        return [stored for _, stored in store(temporary_dir(self._version_dir), ((None, piece) for piece in pieces))]

    def write(self, split: str, shard: int, runs: list[Sequence[Stored]]):
        paths = {fmt: f"{split}/{shard_name(self._schema.objective, shard, self._num_shards[split], fmt, self._compression)}" for fmt in self._formats}
        shards = [self._open(fmt, join(self._version_dir, relative)) for fmt, relative in paths.items()]
        serialize = any(fmt != "parquet" for fmt in self._formats)
        stats = {"split": split, "shard": shard, "examples": 0, "tokens": 0}
        try:
            for group in in_pieces_of(parquet_rows_per_group(self._schema), self._merged(runs)):
                stats["examples"] += group.keys.size
                stats["tokens"] += count_tokens(group.features, self._schema, self._pad)
                records = serialize_examples(group.features, self._schema) if serialize else None
                for out in shards:
                    out.add(group, records)
        except BaseException:
            for out in shards:
                out.abort()
            raise
        written = [out.finish() for out in shards]
        for (fmt, relative), file_stats in zip(paths.items(), written):
            yield {"path": relative, "format": fmt, **stats, **file_stats}

    def _open(self, fmt: str, path: str):
        temporary = temporary_dir(self._version_dir)
        if fmt == "parquet":
            return ParquetShard(path, temporary, self._schema)
        if fmt == "tfrecord":
            return TFRecordShard(path, temporary, self._compression)
        return ArrayRecordShard(path, temporary)


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
            yield from self.write(split, shard, [])


DEAD_LETTER_WINDOW_BITS = 16  # dead letters are sorted in windows of 64 KiB of input (or 65536 records) of one file


def key_by_window(letter: DeadLetter):
    """(reason, source, window of the offset): the dead letters one `SortDeadLetters` element sorts; bounded by the input a window spans."""
    return (letter.reason, letter.source, letter.offset >> DEAD_LETTER_WINDOW_BITS), letter


class SortDeadLetters(beam.DoFn):
    """((reason, source, window), [DeadLetter]) in; their lines, sorted, in a temporary part file; (reason, part reference) out.

    Sorting a whole reason at once would hold every raw record of it (some
    are documents over --max-document-bytes) on one worker; a window holds
    only what a small stretch of one input file produced.
    """

    def __init__(self, temporary_dir: str):
        self._temporary_dir = temporary_dir

    def process(self, element):
        (reason, source, window), letters = element
        ordered = sorted(letters, key=lambda d: (d.source, d.offset, d.raw, d.detail))
        path = join(self._temporary_dir, f"errors-{uuid.uuid4().hex}")
        with create_raw(path) as out:
            for d in ordered:
                out.write((json.dumps(d.to_json(), sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        yield reason, (source, window, path, len(ordered))


class WriteDeadLetters(beam.DoFn):
    """(reason, [part reference]) in; `errors/<reason>.jsonl` written, sorted by source and offset: the parts in (source, window) order, streamed."""

    def __init__(self, version_dir: str):
        self._version_dir = version_dir

    def process(self, element):
        reason, parts = element
        parts = sorted(parts)
        relative = f"errors/{reason}.jsonl"
        written = write_atomically(join(self._version_dir, relative), temporary_dir(self._version_dir), read_blocks(path for _, _, path, _ in parts))
        yield {"path": relative, "reason": reason, "records": sum(records for *_, records in parts), **written}
