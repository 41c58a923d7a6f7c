"""Bulk encoders for the two shard formats, without TensorFlow or protobuf.

`encode_examples` writes a whole batch of `tf.train.Example` messages with
numpy: every varint of every token is placed by a handful of vectorised
passes, never a per-token Python loop. The bytes are standard protobuf wire
format (map entries in schema order), so `tf.io.parse_example`, the `tfrecord`
package and any protobuf parser read them. `frame_tfrecords` adds TFRecord's
length/CRC32C framing; `arrow_table` builds Parquet's columns zero-copy.
"""

from __future__ import annotations

import struct
from typing import Iterable, Mapping

import numpy as np

from schemas import INT, Schema

_TAG_LEN1 = 0x0A  # field 1, length-delimited
_TAG_LEN2 = 0x12  # field 2, length-delimited
_LIST_TAG = {INT: 0x1A, "float": 0x12}  # Feature.int64_list = 3, Feature.float_list = 2
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


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varint_block(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of an [n, m] array as candidate bytes [n, m * w] and a mask of the bytes in use.

    Every value gets `w` byte slots (w = the longest varint present); the mask
    keeps the first `length` of them. Masking the row-major candidates yields
    exactly the concatenated varints.
    """
    values = np.asarray(values)
    if values.size and values.min() >= 0 and values.max() < (1 << 32):
        work = values.astype(np.uint32, copy=False)
    else:
        work = values.astype(np.int64, copy=False).view(np.uint64)
    lengths = varint_length(work)
    width = int(lengths.max(initial=1))
    candidates = np.empty(values.shape + (width,), dtype=np.uint8)
    used = np.empty(values.shape + (width,), dtype=bool)
    for k in range(width):
        group = ((work >> work.dtype.type(7 * k)) & work.dtype.type(0x7F)).astype(np.uint8)
        candidates[..., k] = group | ((lengths > k + 1).view(np.uint8) << 7)
        used[..., k] = lengths > k
    n = values.shape[0]
    return candidates.reshape(n, -1), used.reshape(n, -1)


def _const_block(data: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    row = np.frombuffer(data, dtype=np.uint8)
    return np.broadcast_to(row, (n, row.size)), np.ones((n, row.size), dtype=bool)


def encode_examples(features: Mapping[str, np.ndarray], schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """Serialize a batch as `tf.train.Example`s.

    Returns the concatenated bytes (uint8) and offsets [n + 1]: example i is
    out[offsets[i]:offsets[i+1]]. Each example is laid out as one row of
    candidate bytes (fixed slots for every varint); one boolean mask over all
    rows then drops the unused slots, leaving the exact wire format.
    """
    n = schema.check(features)
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    features_len = np.zeros(n, dtype=np.int64)
    for f in schema.features:
        a = features[f.name]
        if f.dtype == INT:
            payload_block = _varint_block(a)
            payload = payload_block[1].sum(axis=1, dtype=np.int64)
        else:
            raw = np.ascontiguousarray(a, dtype="<f4").view(np.uint8).reshape(n, -1)
            payload_block = (raw, np.ones(raw.shape, dtype=bool))
            payload = np.full(n, raw.shape[1], dtype=np.int64)
        list_len = 1 + varint_length(payload) + payload
        feature_len = 1 + varint_length(list_len) + list_len
        name = f.name.encode("utf-8")
        key = bytes([_TAG_LEN1]) + _varint_bytes(len(name)) + name
        entry_len = len(key) + 1 + varint_length(feature_len) + feature_len
        features_len += 1 + varint_length(entry_len) + entry_len
        blocks += [
            _const_block(bytes([_TAG_LEN1]), n),  # Features.feature map entry
            _varint_block(entry_len[:, None]),
            _const_block(key + bytes([_TAG_LEN2]), n),  # entry key, then entry value (a Feature)
            _varint_block(feature_len[:, None]),
            _const_block(bytes([_LIST_TAG[f.dtype]]), n),  # Feature.int64_list / float_list
            _varint_block(list_len[:, None]),
            _const_block(bytes([_TAG_LEN1]), n),  # packed `value` field
            _varint_block(payload[:, None]),
            payload_block,
        ]
    blocks = [_const_block(bytes([_TAG_LEN1]), n), _varint_block(features_len[:, None])] + blocks
    candidates = np.concatenate([c for c, _ in blocks], axis=1)
    used = np.concatenate([u for _, u in blocks], axis=1)
    sizes = used.sum(axis=1, dtype=np.int64)
    return candidates[used], np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def masked_crc32c(data) -> int:
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_tfrecords(data: np.ndarray, offsets: np.ndarray) -> Iterable[bytes]:
    """TFRecord framing: uint64 length, masked CRC32C of it, the record, masked CRC32C of the record."""
    view = memoryview(data)
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        record = view[start:end]
        header = struct.pack("<Q", end - start)
        yield header + struct.pack("<I", masked_crc32c(header)) + record.tobytes() + struct.pack("<I", masked_crc32c(record))


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
