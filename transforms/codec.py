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

from schemas import FLOAT, INT, Schema

TAG_LEN1 = 0x0A  # field 1, length-delimited
TAG_LEN2 = 0x12  # field 2, length-delimited
LIST_TAG = {INT: 0x1A, FLOAT: 0x12}  # Feature.int64_list = 3, Feature.float_list = 2
FRAME_HEADER = 12  # TFRecord: uint64 length + masked CRC32C of it
_WORD_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def varint_length(values: np.ndarray) -> np.ndarray:
    """Bytes (uint8) each value of an unsigned array takes as a protobuf varint."""
    lengths = np.ones(values.shape, dtype=np.uint8)
    for k in range(1, (values.dtype.itemsize * 8 + 6) // 7):
        lengths += values >= values.dtype.type(1 << (7 * k))
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

    Each value's varint is assembled in little-endian machine words (2, 4 or
    8 bytes, the narrowest that holds the longest varint present; negative
    ints take ten bytes, so two 8-byte words): its 7-bit groups shifted into
    place and its continuation bits looked up by length. A keep-mask, also
    looked up by length, then selects exactly the varint bytes of every word
    in one pass, already in row-major order. Arrays of values below 128 (one
    byte each) skip all that.
    """
    n, m = values.shape
    low, top = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low >= 0 and top < 0x80:
        return values.astype(np.uint8).reshape(-1), np.full(n, m, dtype=np.int64)
    flat = values.reshape(-1)
    if low < 0 or top >= 1 << 32:
        work = flat.astype(np.int64).view(np.uint64)  # int64 two's complement, as protobuf encodes it
    else:
        work = flat.astype(np.uint32 if top >= 1 << 16 else np.uint16)
    lengths = varint_length(work)
    width = int(lengths.max())
    word_bytes = 2 if width <= 2 else 4 if width <= 4 else 8
    word = _WORD_DTYPES[word_bytes]
    num_words = -(-width // word_bytes)
    words = np.empty((work.size, num_words), dtype=word)
    keep = np.empty((work.size, num_words), dtype=word)
    for w in range(num_words):
        groups = range(w * word_bytes, min(width, (w + 1) * word_bytes))
        byte_shift = {k: 8 * (k - w * word_bytes) for k in groups}
        continuation = np.array([sum(0x80 << byte_shift[k] for k in groups if k < length - 1) for length in range(width + 1)], dtype=word)
        used = np.array([sum(1 << byte_shift[k] for k in groups if k < length) for length in range(width + 1)], dtype=word)
        assembled = np.take(continuation, lengths)
        for k in groups:
            assembled |= ((work >> work.dtype.type(7 * k)) & work.dtype.type(0x7F)).astype(word, copy=False) << word.type(byte_shift[k])
        words[:, w] = assembled
        keep[:, w] = np.take(used, lengths)
    return words.view(np.uint8)[keep.view(bool)].reshape(-1), lengths.reshape(n, m).sum(axis=1, dtype=np.int64)


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
        headers = {size: _feature_header(f.name, LIST_TAG[f.dtype], size) for size in np.unique(sizes).tolist()}
        size_list = sizes.tolist()
        ends = np.cumsum(sizes).tolist()
        view = memoryview(payload)
        columns.append([headers[size] for size in size_list])
        columns.append([view[end - size : end] for end, size in zip(ends, size_list)])
        body_sizes += sizes + np.array([len(headers[size]) for size in size_list], dtype=np.int64)
    prefixes = [bytes([TAG_LEN1]) + _varint_bytes(size) for size in body_sizes.tolist()]
    return list(map(b"".join, zip(prefixes, *columns)))


def _feature_header(name: str, list_tag: int, size: int) -> bytes:
    """Everything of a Features map entry before its packed values, for values `size` bytes long."""
    key = name.encode("utf-8")
    entry_key = bytes([TAG_LEN1]) + _varint_bytes(len(key)) + key + bytes([TAG_LEN2])  # key, then the Feature
    list_len = 1 + len(_varint_bytes(size)) + size  # the packed `value` field of Int64List/FloatList
    feature_len = 1 + len(_varint_bytes(list_len)) + list_len
    entry_len = len(entry_key) + len(_varint_bytes(feature_len)) + feature_len
    return b"".join(
        [bytes([TAG_LEN1]), _varint_bytes(entry_len), entry_key, _varint_bytes(feature_len), bytes([list_tag]), _varint_bytes(list_len), bytes([TAG_LEN1]), _varint_bytes(size)]
    )


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` of a serialized message, and where the next field starts."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("a varint runs past the end of the message")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


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
    while size - pos >= FRAME_HEADER:
        (length,) = struct.unpack_from("<Q", buffer, pos)
        (length_crc,) = struct.unpack_from("<I", buffer, pos + 8)
        if masked_crc32c(buffer[pos : pos + 8]) != length_crc:
            raise BrokenFraming(f"the length at byte {pos} fails its CRC")
        end = pos + FRAME_HEADER + length + 4
        if size < end:
            return
        record = buffer[pos + FRAME_HEADER : end - 4]
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
