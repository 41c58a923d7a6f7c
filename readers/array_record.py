"""ArrayRecord shards with random access: the TFRecord shards' serialized `tf.train.Example`s, readable by index.

ArrayRecord's reader opens local paths; a bucket is read through a FUSE
mount (gcsfuse), as MaxText reads its ArrayRecord data. Every failure to
read a shard (a broken footer, a chunk whose hash does not match, fewer
records than the manifest says) raises `readers.records.CorruptShard`
naming the file.
"""

from __future__ import annotations

from typing import Sequence

from readers.records import CorruptShard, ProcessLocalHandles
from transforms.extras import import_extra

RANDOM_ACCESS = "readahead_buffer_size:0,max_parallelism:0"  # what ArrayRecord's docs give for reads by index
_COUNT_BATCH = 1024


def open_reader(path: str, expected: int | None = None, options: str = RANDOM_ACCESS):
    """An `ArrayRecordReader` on `path`, its footer read; `expected` is the record count the manifest gives."""
    module = import_extra("array_record.python.array_record_module", "reading an .array_record shard")
    try:
        reader = module.ArrayRecordReader(path, options)
    except (RuntimeError, ValueError, OSError) as e:
        raise CorruptShard(path, 0, f"not an ArrayRecord file ({e})") from None
    if not reader.ok():
        raise CorruptShard(path, 0, "the ArrayRecord footer or index cannot be read (cut short or corrupt?)")
    if expected is not None and reader.num_records() != expected:
        raise CorruptShard(path, reader.num_records(), f"the shard holds {reader.num_records()} records, the manifest says {expected}")
    return reader


def read_records(reader, path: str, indices: Sequence[int]) -> list[bytes]:
    """The records at shard-relative `indices`, each chunk's hash checked by Riegeli."""
    try:
        return reader.read([int(i) for i in indices])
    except (RuntimeError, ValueError, IndexError) as e:
        raise CorruptShard(path, int(indices[0]) if len(indices) else 0, f"the records cannot be read ({e})") from None


def count_records(path: str) -> int:
    """The number of records of a local ArrayRecord file, every record read once."""
    reader = open_reader(path, options="")
    total = reader.num_records()
    for start in range(0, total, _COUNT_BATCH):
        read_records(reader, path, range(start, min(start + _COUNT_BATCH, total)))
    reader.close()
    return total


class ArrayRecordFiles(ProcessLocalHandles):
    """The ArrayRecord shards of a split: `read(shard, rows)` gives serialized records by shard-relative index.

    A reader opens on first use, one per shard per process (open readers
    are not pickled, nor shared with a forked child), so the object can go
    to Grain's worker processes.
    """

    def __init__(self, paths: Sequence[str], counts: Sequence[int]):
        super().__init__()
        self.paths = list(paths)
        self.counts = [int(c) for c in counts]

    def read(self, shard: int, rows: Sequence[int]) -> list[bytes]:
        reader = self.opened(shard, lambda s: open_reader(self.paths[s], self.counts[s]))
        return read_records(reader, self.paths[shard], rows)
