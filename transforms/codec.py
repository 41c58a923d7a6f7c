"""Bulk encoders for the two shard formats, without TensorFlow or protobuf.

`serialize_examples` writes a whole batch of `tf.train.Example` messages:
every varint of every token is placed by a handful of vectorised numpy
passes, never a per-token Python loop (Python touches each message, not each
value). The bytes are standard protobuf wire format (map entries in schema
order), so `tf.io.parse_example`, the `tfrecord` package and any protobuf
parser read them. `frame_tfrecords` adds TFRecord's length/CRC32C framing;
`arrow_table` builds Parquet's columns zero-copy.
"""

from __future__ import annotations

import functools
import struct
from typing import Iterable, Iterator, Mapping

import numpy as np

from schemas import INT, Schema

_TAG_LEN1 = 0x0A  # field 1, length-delimited
_TAG_LEN2 = 0x12  # field 2, length-delimited
_LIST_TAG = {INT: 0x1A, "float": 0x12}  # Feature.int64_list = 3, Feature.float_list = 2
_FRAME_HEADER = 12  # TFRecord: uint64 length + masked CRC32C of it
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def varint_length(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a protobuf varint (int64 as two's complement)."""
    v = np.asarray(values)
    if v.dtype != np.uint32:
        v = v.astype(np.int64, copy=False).view(np.uint64)
    lengths = np.ones(v.shape, dtype=np.int64)
    for limit in _VARINT_LIMITS[: 4 if v.dtype == np.uint32 else 9]:
        lengths += v >= limit
    return lengths


@functools.lru_cache(maxsize=1 << 16)
def _varint_bytes(value: int) -> bytes:
    """One varint (cached: the lengths in message headers repeat from example to example)."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def varint_payloads(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The packed varints of each row of an [n, m] int array: all rows' bytes concatenated, and bytes per row.

    Every value gets `w` candidate byte slots (w = the longest varint present)
    and a mask keeps the first `length` of them, so one boolean selection over
    the row-major candidates yields exactly the concatenated varints. Arrays
    of values below 128 (one byte each) skip all that.
    """
    n, m = values.shape
    low, top = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low >= 0 and top < 0x80:
        return values.astype(np.uint8).reshape(-1), np.full(n, m, dtype=np.int64)
    work = values.astype(np.uint32) if low >= 0 and top < (1 << 32) else values.astype(np.int64).view(np.uint64)
    lengths = varint_length(work)
    width = int(lengths.max())
    candidates = np.empty((n, m, width), dtype=np.uint8)
    used = np.empty((n, m, width), dtype=bool)
    for k in range(width):
        group = ((work >> work.dtype.type(7 * k)) & work.dtype.type(0x7F)).astype(np.uint8)
        candidates[..., k] = group | ((lengths > k + 1).view(np.uint8) << 7)
        used[..., k] = lengths > k
    return candidates[used], lengths.sum(axis=1)


def serialize_examples(features: Mapping[str, np.ndarray], schema: Schema) -> list[bytes]:
    """A batch of examples as serialized `tf.train.Example` messages, one per row.

    The values of each feature are encoded for all rows at once
    (`varint_payloads`, or raw little-endian floats). A row's message is its
    length prefix, then per feature a header (which depends only on the
    feature and its payload size, so it is made once per distinct size) and
    its slice of the payload; the rows are joined by `map`, not a Python loop
    over fields.
    """
    n = schema.check(features)
    columns: list[list] = []
    body_sizes = np.zeros(n, dtype=np.int64)
    for f in schema.features:
        a = features[f.name]
        if f.dtype == INT:
            payload, sizes = varint_payloads(a)
        else:
            payload, sizes = np.ascontiguousarray(a, dtype="<f4").view(np.uint8).reshape(-1), np.full(n, 4 * f.length, np.int64)
        headers = {size: _feature_header(f.name, _LIST_TAG[f.dtype], size) for size in np.unique(sizes).tolist()}
        size_list = sizes.tolist()
        ends = np.cumsum(sizes).tolist()
        view = memoryview(payload)
        columns.append([headers[size] for size in size_list])
        columns.append([view[end - size : end] for end, size in zip(ends, size_list)])
        body_sizes += sizes + np.array([len(headers[size]) for size in size_list], dtype=np.int64)
    prefixes = [bytes([_TAG_LEN1]) + _varint_bytes(size) for size in body_sizes.tolist()]
    return list(map(b"".join, zip(prefixes, *columns)))


def _feature_header(name: str, list_tag: int, size: int) -> bytes:
    """Everything of a Features map entry before its packed values, for values `size` bytes long."""
    key = name.encode("utf-8")
    entry_key = bytes([_TAG_LEN1]) + _varint_bytes(len(key)) + key + bytes([_TAG_LEN2])  # key, then the Feature
    list_len = 1 + len(_varint_bytes(size)) + size  # the packed `value` field of Int64List/FloatList
    feature_len = 1 + len(_varint_bytes(list_len)) + list_len
    entry_len = len(entry_key) + len(_varint_bytes(feature_len)) + feature_len
    return b"".join(
        [bytes([_TAG_LEN1]), _varint_bytes(entry_len), entry_key, _varint_bytes(feature_len), bytes([list_tag]), _varint_bytes(list_len), bytes([_TAG_LEN1]), _varint_bytes(size)]
    )


def masked_crc32c(data) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class BrokenFraming(ValueError):
    """A TFRecord length fails its CRC: the records after it cannot be found."""


def scan_frames(buffer: bytes | bytearray) -> Iterator[tuple[int, bytes | bytearray, bool]]:
    """The whole TFRecord frames at the start of `buffer`: (end of the frame, its record, whether the record's CRC matches).

    Stops before an incomplete frame (the caller keeps its bytes for the next
    block); raises `BrokenFraming` at a length that fails its CRC.
    """
    size, pos = len(buffer), 0
    while size - pos >= _FRAME_HEADER:
        (length,) = struct.unpack_from("<Q", buffer, pos)
        (length_crc,) = struct.unpack_from("<I", buffer, pos + 8)
        if masked_crc32c(buffer[pos : pos + 8]) != length_crc:
            raise BrokenFraming(f"the length at byte {pos} fails its CRC")
        end = pos + _FRAME_HEADER + length + 4
        if size < end:
            return
        record = buffer[pos + _FRAME_HEADER : end - 4]
        (record_crc,) = struct.unpack_from("<I", buffer, end - 4)
        yield end, record, masked_crc32c(record) == record_crc
        pos = end


def frame_tfrecords(records: Iterable[bytes]) -> bytes:
    """TFRecord framing: uint64 length, masked CRC32C of it, the record, masked CRC32C of the record."""
    out = []
    for record in records:
        header = struct.pack("<Q", len(record))
        out += [header, struct.pack("<I", masked_crc32c(header)), record, struct.pack("<I", masked_crc32c(record))]
    return b"".join(out)


def arrow_table(features: Mapping[str, np.ndarray], schema: Schema):
    """A pyarrow Table with one fixed_size_list column per feature (no copies of the values)."""
    import pyarrow as pa

    schema.check(features)
    arrow_schema = schema.arrow_schema()
    columns = [
        pa.FixedSizeListArray.from_arrays(pa.array(features[f.name].reshape(-1)), f.length).cast(arrow_schema.field(f.name).type)
        for f in schema.features
    ]
    return pa.Table.from_arrays(columns, schema=arrow_schema)
