"""How bulk data crosses a shuffle: written to a transit file in the version's temporary prefix; only a reference crosses.

A runner's shuffle copies every element several times (a local runner
decodes and re-encodes each one in its launcher, holding all of them in
memory until the run ends). So the arrays a stage emits are compacted (the
smallest unsigned dtype that holds their values), zstd-compressed at a fast
level (padding, masks, positions and segment ids shrink to almost nothing,
token ids by a quarter or so; level 1 would take a third off them at twice
the CPU, 0.4 s more per worker of a 4x clm build) and written to a
`transit-*` file under the version directory's `.tmp/` prefix, which
every worker can already reach since they all write shards there; the
element is a `Stored` reference of a few hundred bytes, read back by the
step that uses it (fetching exactly its bytes). Publish deletes the whole
prefix before it writes the manifest.
"""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generic, Hashable, Iterable, Iterator, Mapping, Protocol, TypeVar

import numpy as np
from apache_beam.metrics import Metrics

_LEVEL = -3
HOLD_BYTES = 32 << 20
AHEAD_BYTES = 8 << 20  # bytes being read ahead at once, as unpacked in memory
AHEAD_READS = 16
TRANSIT_PREFIX = "transit-"
TRANSIT_READS = Metrics.distribution("tokenmill", "transit_read_bytes")  # one read each: what object-store requests a build makes (Dataflow shows it)


class ArrayBundle(Protocol):
    @property
    def nbytes(self) -> int: ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]): ...


def compact(a: np.ndarray) -> np.ndarray:
    """The same non-negative integers in the smallest unsigned dtype that holds them."""
    if a.dtype.kind not in "iu" or a.size == 0 or a.min() < 0:
        return a
    top = a.max()
    for small in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(small).max:
            return a.astype(small)
    return a


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> list[tuple[str, str, tuple[int, ...], str, bytes]]:
    """Named arrays as (name, dtype, shape, dtype in transit, compressed bytes)."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=_LEVEL)
    packed = []
    for name, a in arrays.items():
        small = np.ascontiguousarray(compact(a))
        packed.append((name, a.dtype.str, a.shape, small.dtype.str, compressor.compress(small)))
    return packed


def unpack_arrays(packed: list[tuple[str, str, tuple[int, ...], str, bytes]]) -> dict[str, np.ndarray]:
    import zstandard

    decompressor = zstandard.ZstdDecompressor()
    out = {}
    for name, dtype, shape, small_dtype, data in packed:
        small = np.frombuffer(decompressor.decompress(data), dtype=np.dtype(small_dtype)).reshape(shape)
        out[name] = small.astype(np.dtype(dtype))
    return out


class Stored:
    """Where one DocBatch or KeyedExamples waits in a transit file: the element that crosses a shuffle."""

    def __init__(self, kind: type, path: str, offset: int, arrays: list[tuple[str, str, tuple[int, ...], str, int]]):
        self._kind = kind
        self._path = path
        self._offset = offset
        self._arrays = arrays  # (name, dtype, shape, dtype in transit, compressed bytes)

    @property
    def nbytes(self) -> int:
        """Bytes it takes in the transit file."""
        return sum(entry[-1] for entry in self._arrays)

    @property
    def unpacked_nbytes(self) -> int:
        """Bytes its arrays take in memory once unpacked."""
        return sum(int(np.prod(shape)) * np.dtype(dtype).itemsize for _, dtype, shape, _, _ in self._arrays)

    def unpack(self):
        from transforms.storage import open_raw

        # Fetch exactly its bytes: Beam's GCS reader fetches 16 MiB (or the rest of the file) at every open.
        with open_raw(self._path, self.nbytes) as f:
            f.seek(self._offset)
            data = memoryview(f.read(self.nbytes))
        packed, pos = [], 0
        for *meta, size in self._arrays:
            packed.append((*meta, data[pos : pos + size]))
            pos += size
        return self._kind.from_arrays(unpack_arrays(packed))


def unpack_ahead(stored: Iterable, ahead_bytes: int = AHEAD_BYTES, ahead_reads: int = AHEAD_READS) -> Iterator:
    """Each part unpacked, in order, with the next ones read meanwhile (up to `ahead_reads` of them and `ahead_bytes` unpacked).

    On an object store a read waits tens of milliseconds whatever its size;
    a step that reads thousands of references one after the other would
    spend most of its time waiting. Reading a few ahead overlaps the waits.
    """
    pending: deque = deque()
    in_flight = 0
    with ThreadPoolExecutor(ahead_reads) as pool:
        for part in stored:
            size = getattr(part, "unpacked_nbytes", 0)  # 0: already in memory (`Loaded`)
            while pending and (len(pending) >= ahead_reads or in_flight + size > ahead_bytes):
                read, done = pending.popleft()
                in_flight -= getattr(done, "unpacked_nbytes", 0)
                yield taken(read, done)
            pending.append((pool.submit(part.unpack), part))
            in_flight += size
        while pending:
            yield taken(*pending.popleft())


def taken(read: Future, part):
    """What `part`'s read gave, counted as a transit read here: Beam counts only updates made in the thread running the step, not in a pool's."""
    unpacked = read.result()
    if isinstance(part, Stored):
        TRANSIT_READS.update(part.nbytes)
    return unpacked


class Loaded:
    """A part already in memory, read like a `Stored` one."""

    def __init__(self, part):
        self._part = part

    def unpack(self):
        return self._part


def store(directory: str, parts: Iterable[tuple[Hashable, ArrayBundle]]) -> list[tuple[Hashable, Stored]]:
    """Pack `parts` into one new transit file in `directory`; a reference to each, with its key (no file if no parts).

    Each part is compressed and written before the next is taken, so a long
    iterable of parts (a merged run) never waits in memory whole.
    """
    from transforms.storage import create_raw

    path = f"{directory.rstrip('/')}/{TRANSIT_PREFIX}{uuid.uuid4().hex}"
    stored, offset, out = [], 0, None
    try:
        for key, part in parts:
            arrays = pack_arrays(part.to_arrays())
            if out is None:
                out = create_raw(path)
            for *_, data in arrays:
                out.write(data)
            stored.append((key, Stored(type(part), path, offset, [(*meta, len(data)) for *meta, data in arrays])))
            offset += stored[-1][1].nbytes
    finally:
        if out is not None:
            out.close()
    return stored


Part = TypeVar("Part", bound=ArrayBundle)


class HeldByKey(Generic[Part]):
    """Parts held per key and sent as one element per key once `limit` bytes are held (and at the end of a bundle).

    A producer that emits a small part for every (input batch, key) pair
    floods the shuffle with tiny elements; each costs a runner per-element
    work and compresses poorly. Holding parts for a while turns thousands
    of them into a few large ones. Order does not matter: every consumer
    sorts what it receives.
    """

    def __init__(self, concat: Callable[[list[Part]], Part], limit: int = HOLD_BYTES):
        self._concat = concat
        self._limit = limit
        self._parts: dict[Hashable, list[Part]] = {}
        self._held = 0

    def add(self, key: Hashable, part: Part) -> Iterator[tuple[Hashable, Part]]:
        """Hold `part`; if the limit is reached, every key's parts, merged."""
        self._parts.setdefault(key, []).append(part)
        self._held += part.nbytes
        if self._held >= self._limit:
            yield from self.drain()

    def drain(self) -> Iterator[tuple[Hashable, Part]]:
        """Every key's parts, merged, in key order; nothing is held afterwards.

        A key's parts are let go as soon as they are merged, so a drain holds
        at most the limit plus one merged key (not the limit twice over).
        """
        parts, self._parts, self._held = self._parts, {}, 0
        for key in sorted(parts):
            yield key, self._concat(parts.pop(key))


def regroup(
    stored: Iterable[Stored],
    split: Callable[[Any], Iterable[tuple[Hashable, Part]]],
    held: HeldByKey,
    spill: Callable[[Iterator[tuple[Hashable, Any]]], Iterable[tuple[Hashable, Any]]],
) -> Iterator[tuple[Hashable, list, Any]]:
    """The parts of a shuffle group sorted out by a finer key, in bounded memory: (key, what was spilled, what is still held) in key order.

    Each stored part is unpacked and `split` by the finer key into `held`;
    each time the hold fills, `spill` stores what it drains (one element of
    the spilled list per key it held). The last hold stays in memory, so a
    group smaller than the hold is never stored again.
    """
    spilled: dict[Hashable, list] = defaultdict(list)
    for part in unpack_ahead(stored):
        for key, piece in split(part):
            for spilled_key, spilled_piece in spill(held.add(key, piece)):
                spilled[spilled_key].append(spilled_piece)
    last = dict(held.drain())
    for key in sorted(spilled.keys() | last.keys()):
        yield key, spilled.pop(key, []), last.pop(key, None)
