"""Read a split's examples from a published version into numpy, refusing a damaged file by name.

A Parquet shard is read whole and its sha256 compared with the manifest's
before it is decoded: Parquet pages carry no checksum (tokenmill writes
none), so a flipped byte inside a zstd page or a plain int32 value can decode
into a wrong token id without any error, and only the manifest's hash catches
every damaged byte; hashing costs far less than decoding. A TFRecord shard
carries a CRC on every record, which `readers.records` checks as it streams.
`load_shard` is the one place that switches on the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from typing import Any, Iterator, Mapping, TextIO

import numpy as np

from readers.manifest import Corpus
from readers.records import CorruptShard, gather_rows, open_binary, read_tfrecord, row_group_arrays, row_group_ends
from schemas import Schema

FORMATS = ("parquet", "tfrecord")


class BadShard(RuntimeError):
    """A shard file that does not match its manifest entry; the message names the file."""


@dataclasses.dataclass
class Rows:
    """Examples of a split [N, length] by feature name, with where each came from (shard number, row in shard)."""

    features: dict[str, np.ndarray]
    shard: np.ndarray
    row: np.ndarray


def shard_entries(corpus: Corpus, split: str, fmt: str) -> list[Mapping[str, Any]]:
    """The manifest's entries for a split's shards in one format, in shard order."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return corpus.shard_entries(split, fmt)


def load_shard(corpus: Corpus, entry: Mapping[str, Any], fmt: str, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One shard's examples (all, or those at `rows`); `BadShard` naming the file when it differs from the manifest."""
    path = f"{corpus.root}/{entry['path']}"
    try:
        if fmt == "parquet":
            return _parquet_shard(path, entry, corpus.schema, rows)
        return _tfrecord_shard(path, entry, corpus, rows)
    except FileNotFoundError:
        raise BadShard(f"{path}: missing (the manifest lists it)") from None


def _parquet_shard(path: str, entry: Mapping[str, Any], schema: Schema, rows: np.ndarray | None) -> dict[str, np.ndarray]:
    """The whole file checked against the manifest's sha256; only the row groups holding `rows` (all, when None) decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_binary(path) as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise BadShard(
            f"{path}: damaged: its sha256 is {digest}, the manifest says {entry['sha256']} "
            f"({len(data):,} bytes, manifest {entry['bytes']:,}); restore or rebuild this version"
        )
    shard = pq.ParquetFile(pa.BufferReader(data))
    if shard.metadata.num_rows != entry["examples"]:
        raise BadShard(f"{path}: holds {shard.metadata.num_rows} examples, the manifest says {entry['examples']}")
    wanted = np.arange(entry["examples"]) if rows is None else np.asarray(rows, dtype=np.int64)
    return gather_rows(row_group_ends(shard), wanted, schema, lambda group: row_group_arrays(shard, group, schema, path))


def _tfrecord_shard(path: str, entry: Mapping[str, Any], corpus: Corpus, rows: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every record's CRCs checked (also of the records not kept); the kept ones decoded."""
    keep = None
    if rows is not None:
        keep = np.zeros(entry["examples"], dtype=bool)
        keep[rows] = True
    compression = "gzip" if corpus.tfrecord_compression else None
    try:
        batches = list(read_tfrecord(path, corpus.schema, compression, 0, entry["examples"], keep=keep))
    except CorruptShard as e:
        raise BadShard(f"{e}; restore or rebuild this version") from e
    return {f.name: np.concatenate([b[f.name] for b in batches]) if batches else np.zeros((0, f.length), f.numpy_dtype) for f in corpus.schema.features}


class Progress:
    """A one-line bar of files and bytes read, redrawn on `stream` (stderr when it is a terminal)."""

    def __init__(self, total_files: int, total_bytes: int, stream: TextIO | None):
        self.total_files, self.total_bytes, self.stream = total_files, total_bytes, stream
        self.files = self.bytes = 0
        self.started = time.monotonic()

    def advance(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if not self.stream:
            return
        width = 30
        filled = width * self.bytes // max(self.total_bytes, 1)
        rate = self.bytes / max(time.monotonic() - self.started, 1e-6) / 1e6
        self.stream.write(
            f"\rreading [{'#' * filled}{'.' * (width - filled)}] {self.files}/{self.total_files} files, "
            f"{self.bytes / 1e6:,.1f}/{self.total_bytes / 1e6:,.1f} MB, {rate:,.0f} MB/s"
        )
        if self.files == self.total_files:
            self.stream.write("\n")
        self.stream.flush()


def default_progress_stream() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None


def even_sample(total: int, n: int | None) -> np.ndarray:
    """Indices of `n` examples spread evenly over `total` (all of them when `n` is None or at least `total`)."""
    if n is None or n >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


def iter_shards(
    corpus: Corpus, split: str, fmt: str = "parquet", indices: np.ndarray | None = None, progress: TextIO | None = None
) -> Iterator[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    """(shard number, rows in it, their features) for each file holding examples at `indices`
    (positions in the split, shards in order; all when None), one file at a time."""
    entries = shard_entries(corpus, split, fmt)
    counts = np.array([e["examples"] for e in entries], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    indices = np.arange(starts[-1]) if indices is None else np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= starts[-1]):
        raise IndexError(f"split {split!r} has {starts[-1]} examples (indices 0..{starts[-1] - 1}); --index is out of range")
    file_of = np.searchsorted(starts, indices, side="right") - 1
    wanted = np.unique(file_of)
    bar = Progress(int(wanted.size), int(sum(entries[i]["bytes"] for i in wanted.tolist())), progress)
    for i in wanted.tolist():
        local = indices[file_of == i] - starts[i]
        features = load_shard(corpus, entries[i], fmt, local)
        bar.advance(entries[i]["bytes"])
        yield entries[i]["shard"], local, features


def read_rows(
    corpus: Corpus, split: str, fmt: str = "parquet", indices: np.ndarray | None = None, progress: TextIO | None = None
) -> Rows:
    """Examples of a split at `indices` (as `iter_shards`), all in memory."""
    parts, shards, rows = [], [], []
    for shard, local, features in iter_shards(corpus, split, fmt, indices, progress):
        parts.append(features)
        shards.append(np.full(local.size, shard, dtype=np.int64))
        rows.append(local)
    features = {
        f.name: np.concatenate([p[f.name] for p in parts]) if parts else np.zeros((0, f.length), f.numpy_dtype)
        for f in corpus.schema.features
    }
    return Rows(features, np.concatenate(shards) if shards else np.zeros(0, np.int64), np.concatenate(rows) if rows else np.zeros(0, np.int64))


def split_index(corpus: Corpus, split: str, fmt: str, shard: int, row: int) -> int:
    """The position in the split of row `row` of shard `shard` (--shard with --index)."""
    entries = shard_entries(corpus, split, fmt)
    numbers = [e["shard"] for e in entries]
    if shard not in numbers:
        raise IndexError(f"split {split!r} has shards {numbers[0]}..{numbers[-1]}; no shard {shard} (--shard)")
    position = numbers.index(shard)
    if not 0 <= row < entries[position]["examples"]:
        raise IndexError(f"shard {shard} of {split!r} has {entries[position]['examples']} examples; no row {row} (--index)")
    return sum(e["examples"] for e in entries[:position]) + row
