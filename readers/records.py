"""Reading shards without TensorFlow, the `tfrecord` package or protobuf: TFRecord frames and Parquet row groups.

A TFRecord shard is read in blocks; every frame's two CRCs are checked
(`transforms.codec.scan_frames`), and reaching record k walks the frame
headers (length, its CRC, a seek past the data) without touching the data.
Records decode a batch at a time: Python walks each message's few headers to
find each feature's packed values, and numpy decodes every varint of the
batch at once. Parquet shards read by row group. Both give the same batch:
`{feature: array [n, length]}`, int32 ids and float32 weights as the
schema says (the Parquet dtypes). Local paths and fsspec URLs (gs://, s3://)
open alike, streaming. Nothing here registers protobuf descriptors, so a
process may also use TensorFlow.
"""

from __future__ import annotations

import collections
import gzip
import os
import struct
import zlib
from typing import IO, Any, Callable, Iterator, Sequence

import numpy as np

from schemas import INT, Schema
from transforms.codec import FRAME_HEADER, LIST_TAG, TAG_LEN1, TAG_LEN2, BrokenFraming, masked_crc32c, read_varint, scan_frames

BLOCK_SIZE = 1 << 20
DECODE_BATCH = 256
_MAX_VARINT = 10
_LIST_TAGS = {tag: dtype for dtype, tag in LIST_TAG.items()}


class CorruptShard(ValueError):
    """A shard that cannot be read as written: names the file and the record."""

    def __init__(self, path: str, record: int, problem: str):
        super().__init__(f"{path}: record {record}: {problem}")
        self.path, self.record, self.problem = path, record, problem


def open_binary(path: str) -> IO[bytes]:
    """A local file or an fsspec URL, opened for streaming reads (seekable)."""
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")


def _open_tfrecord(path: str, compression: str | None) -> IO[bytes]:
    raw = open_binary(path)
    return gzip.GzipFile(fileobj=raw, mode="rb") if compression == "gzip" else raw


def _read_exactly(f: IO[bytes], size: int) -> bytes:
    data = f.read(size)
    while len(data) < size:
        more = f.read(size - len(data))
        if not more:
            break
        data += more
    return data


def skip_records(f: IO[bytes], count: int, path: str) -> None:
    """Move `f` past `count` records by their frame headers: each length's CRC is checked, the data is not read.

    Only the last byte of each frame is read, to see that the frame is whole.
    """
    for index in range(count):
        header = _read_exactly(f, FRAME_HEADER)
        if len(header) < FRAME_HEADER:
            raise CorruptShard(path, index, f"the shard ends before record {count} (cut short?)")
        (length,) = struct.unpack_from("<Q", header)
        (length_crc,) = struct.unpack_from("<I", header, 8)
        if masked_crc32c(header[:8]) != length_crc:
            raise CorruptShard(path, index, "the record's length fails its CRC")
        f.seek(length + 3, 1)
        if not f.read(1):
            raise CorruptShard(path, index, "the shard ends inside this record (cut short?)")


def iter_records(path: str, compression: str | None = None, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """The records `start` to `stop` (shard-relative) of a TFRecord shard, each checked against its CRC.

    Raises `CorruptShard` at a record whose length or data fails its CRC, or
    when the shard ends inside a record or before `stop`.
    """
    index = start
    try:
        with _open_tfrecord(path, compression) as f:
            skip_records(f, start, path)
            buffer = bytearray()
            while stop is None or index < stop:
                block = f.read(BLOCK_SIZE)
                if not block:
                    break
                buffer += block
                end = 0
                for end, record, intact in scan_frames(buffer):
                    if not intact:
                        raise CorruptShard(path, index, "the record's data fails its CRC")
                    yield bytes(record)
                    index += 1
                    if index == stop:
                        return
                del buffer[:end]
            if buffer:
                raise CorruptShard(path, index, f"the shard ends inside this record ({len(buffer)} bytes of it; cut short?)")
            if stop is not None and index < stop:
                raise CorruptShard(path, index, f"the shard ends before record {stop} (cut short?)")
    except BrokenFraming:
        raise CorruptShard(path, index, "the record's length fails its CRC") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise CorruptShard(path, index, f"the gzip stream is broken: {e}") from None


def _expect(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """The length of the length-delimited field `tag` at `pos`, and where its contents start."""
    if data[pos] != tag:
        raise ValueError(f"expected tag {tag:#x} at byte {pos}, found {data[pos]:#x}")
    return read_varint(data, pos + 1)


def _feature_payloads(record: bytes) -> dict[str, tuple[int, int, str]]:
    """Each feature of a serialized `tf.train.Example`: (start, end) of its packed values in `record`, and its dtype."""
    size, pos = _expect(record, 0, TAG_LEN1)  # Example.features
    if pos + size != len(record):
        raise ValueError("the message is not one Example.features field")
    found = {}
    while pos < len(record):
        entry_size, pos = _expect(record, pos, TAG_LEN1)  # Features.feature map entry
        entry_end = pos + entry_size
        key_size, pos = _expect(record, pos, TAG_LEN1)
        name = record[pos : pos + key_size].decode("utf-8")
        _, pos = _expect(record, pos + key_size, TAG_LEN2)  # the Feature
        tag = record[pos]
        if tag not in _LIST_TAGS:
            raise ValueError(f"feature {name!r} is not an int64_list or float_list (tag {tag:#x})")
        list_size, pos = read_varint(record, pos + 1)
        if list_size:
            values_size, pos = _expect(record, pos, TAG_LEN1)  # packed `value`
        else:
            values_size = 0
        if pos + values_size != entry_end:
            raise ValueError(f"feature {name!r} is not one packed list")
        found[name] = (pos, pos + values_size, _LIST_TAGS[tag])
        pos = entry_end
    return found


def decode_varints(data: np.ndarray) -> np.ndarray:
    """The unsigned values of concatenated varints (uint8 array ending with a varint's last byte) as uint64."""
    if data.size == 0 or data.max() < 0x80:
        return data.astype(np.uint64)
    last = data < 0x80
    ends = np.flatnonzero(last)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    varint_of_byte = np.cumsum(last) - last
    place = np.arange(data.size) - starts[varint_of_byte]
    if place.max() >= _MAX_VARINT:
        raise ValueError("a varint longer than 10 bytes")
    parts = (data & 0x7F).astype(np.uint64) << (7 * place).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)


def decode_examples(records: Sequence[bytes], schema: Schema, path: str = "<records>", indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """A batch of serialized `tf.train.Example`s as `{feature: [n, length]}` in the schema's numpy dtypes.

    `path` and `indices` (the shard-relative index of each record) name a
    record that does not hold the schema's features with their lengths.
    """
    n = len(records)
    indices = range(n) if indices is None else indices
    spans = {f.name: np.empty((n, 2), dtype=np.int64) for f in schema.features}
    pieces: dict[str, list] = {f.name: [] for f in schema.features}
    for i, record in enumerate(records):
        try:
            payloads = _feature_payloads(record)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            raise CorruptShard(path, indices[i], f"not a tf.train.Example ({e})") from None
        view = memoryview(record)
        for f in schema.features:
            if f.name not in payloads:
                raise CorruptShard(path, indices[i], f"no feature {f.name!r}; it has {sorted(payloads)}")
            start, end, dtype = payloads[f.name]
            if dtype != f.dtype:
                raise CorruptShard(path, indices[i], f"feature {f.name!r} holds {dtype} values, the manifest says {f.dtype}")
            spans[f.name][i] = (start, end)
            pieces[f.name].append(view[start:end])
    out = {}
    for f in schema.features:
        data = np.frombuffer(b"".join(pieces[f.name]), dtype=np.uint8)
        sizes = spans[f.name][:, 1] - spans[f.name][:, 0]
        if f.dtype == INT:
            out[f.name] = _decode_int_rows(data, sizes, f.length, f.name, path, indices)
        else:
            wrong = np.flatnonzero(sizes != 4 * f.length)
            if wrong.size:
                raise CorruptShard(path, indices[int(wrong[0])], f"feature {f.name!r} holds {sizes[wrong[0]] // 4} floats, not {f.length}")
            out[f.name] = data.view("<f4").reshape(n, f.length).astype(np.float32, copy=False)
    return out


def _decode_int_rows(data: np.ndarray, sizes: np.ndarray, length: int, name: str, path: str, indices: Sequence[int]) -> np.ndarray:
    """Rows of `length` varints each, the rows' payloads concatenated (`sizes` bytes each)."""
    row_ends = np.cumsum(sizes)
    last = data < 0x80
    if sizes.size and ((sizes == 0) | ~last[np.maximum(row_ends - 1, 0)]).any():
        bad = int(np.flatnonzero((sizes == 0) | ~last[np.maximum(row_ends - 1, 0)])[0])
        raise CorruptShard(path, indices[bad], f"feature {name!r} does not end with a whole varint")
    counts = np.diff(np.concatenate([[0], np.cumsum(last)[row_ends - 1]])) if sizes.size else sizes
    wrong = np.flatnonzero(counts != length)
    if wrong.size:
        raise CorruptShard(path, indices[int(wrong[0])], f"feature {name!r} holds {counts[wrong[0]]} values, not {length}")
    try:
        values = decode_varints(data)
    except ValueError as e:
        raise CorruptShard(path, indices[0], f"feature {name!r}: {e}") from None
    return values.view(np.int64).astype(np.int32).reshape(sizes.size, length)


def read_tfrecord(
    path: str,
    schema: Schema,
    compression: str | None = None,
    start: int = 0,
    stop: int | None = None,
    batch_size: int = DECODE_BATCH,
    keep: np.ndarray | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Records `start` to `stop` of a TFRecord shard, decoded in batches of up to `batch_size`.

    With `keep` (a bool per record of [start, stop)), only the kept records
    are decoded; the others are still checked against their CRCs.
    """
    batch: list[bytes] = []
    indices: list[int] = []
    for index, record in enumerate(iter_records(path, compression, start, stop), start):
        if keep is not None and not keep[index - start]:
            continue
        batch.append(record)
        indices.append(index)
        if len(batch) == batch_size:
            yield decode_examples(batch, schema, path, indices)
            batch, indices = [], []
    if batch:
        yield decode_examples(batch, schema, path, indices)


def read_parquet(path: str, schema: Schema, start: int = 0, stop: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Rows `start` to `stop` of a Parquet shard, one batch per row group it touches (the groups before are skipped unread)."""
    import pyarrow.parquet as pq

    with open_binary(path) as raw:
        shard = pq.ParquetFile(raw)
        group_ends = row_group_ends(shard)
        total = int(group_ends[-1]) if group_ends.size else 0
        stop = total if stop is None else stop
        if stop > total:
            raise CorruptShard(path, total, f"the shard holds {total} rows, not {stop}")
        group_starts = np.concatenate([[0], group_ends[:-1]])
        for g in range(int(np.searchsorted(group_ends, start, side="right")), shard.num_row_groups):
            if group_starts[g] >= stop:
                break
            rows = row_group_arrays(shard, g, schema, path)
            lo, hi = max(start - int(group_starts[g]), 0), min(stop, int(group_ends[g])) - int(group_starts[g])
            yield {name: a[lo:hi] for name, a in rows.items()}


def row_group_ends(shard) -> np.ndarray:
    """Where each row group of an open `pyarrow.parquet.ParquetFile` ends, in rows."""
    return np.cumsum([shard.metadata.row_group(g).num_rows for g in range(shard.num_row_groups)], dtype=np.int64)


def gather_rows(group_ends: np.ndarray, rows: np.ndarray, schema: Schema, row_group: Callable[[int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The shard's `rows` (any order) as `{feature: [len(rows), length]}`, each row group they touch got once from `row_group(g)`."""
    groups = np.searchsorted(group_ends, rows, side="right")
    out = {f.name: np.empty((rows.size, f.length), f.numpy_dtype) for f in schema.features}
    for group in np.unique(groups).tolist():
        where = np.flatnonzero(groups == group)
        arrays = row_group(group)
        offsets = rows[where] - (int(group_ends[group - 1]) if group else 0)
        for name, values in arrays.items():
            out[name][where] = values[offsets]
    return out


def row_group_arrays(shard, group: int, schema: Schema, path: str) -> dict[str, np.ndarray]:
    """One row group of an open `pyarrow.parquet.ParquetFile` as `{feature: [rows, length]}`."""
    table = shard.read_row_group(group, columns=schema.names)
    out = {}
    for f in schema.features:
        column = table.column(f.name).combine_chunks()
        values = column.flatten().to_numpy(zero_copy_only=False)
        if values.size != len(column) * f.length:
            raise CorruptShard(path, 0, f"row group {group}: column {f.name!r} is not {f.length} values a row")
        out[f.name] = values.astype(f.numpy_dtype, copy=False).reshape(len(column), f.length)
    return out


class ProcessLocalHandles:
    """Open shard handles kept per process: a forked DataLoader or Grain worker opens its own.

    A forked child inherits its parent's open files and shares their file
    offsets, so two processes seeking and reading one inherited handle read
    each other's bytes; `opened()` starts afresh in a process that did not
    open them, and pickling leaves them behind.
    """

    def __init__(self):
        self._pid = os.getpid()
        self._handles: dict[int, Any] = {}

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}}

    def opened(self, shard: int, open_shard: Callable[[int], Any]) -> Any:
        if self._pid != os.getpid():
            self._pid, self._handles = os.getpid(), {}
        if shard not in self._handles:
            self._handles[shard] = open_shard(shard)
        return self._handles[shard]


class ParquetFiles(ProcessLocalHandles):
    """The Parquet shards of a split: `read(shard, rows)` gives decoded rows; the last `cached_row_groups` row groups stay decoded."""

    def __init__(self, paths: Sequence[str], schema: Schema, cached_row_groups: int = 8):
        super().__init__()
        self.paths = list(paths)
        self.schema = schema
        self.cached_row_groups = cached_row_groups
        self._cache: collections.OrderedDict = collections.OrderedDict()

    def __getstate__(self):
        return {**super().__getstate__(), "_cache": collections.OrderedDict()}

    def read(self, shard: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        parquet, group_ends = self.opened(shard, self._open)
        return gather_rows(group_ends, rows, self.schema, lambda group: self._row_group(shard, group, parquet))

    def _open(self, shard: int):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(open_binary(self.paths[shard]))
        return parquet, row_group_ends(parquet)

    def _row_group(self, shard: int, group: int, parquet) -> dict[str, np.ndarray]:
        key = (shard, group)
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = row_group_arrays(parquet, group, self.schema, self.paths[shard])
            if len(self._cache) > self.cached_row_groups:
                self._cache.popitem(last=False)
        return self._cache[key]
