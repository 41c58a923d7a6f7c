"""How bulk data crosses a shuffle: arrays compacted and compressed, unpacked by the step that uses it.

Everything a stage emits crosses a shuffle, and a local runner holds every
shuffle in memory until the run ends. So integer arrays travel in the
smallest unsigned dtype that holds their values, zstd-compressed (padding,
masks, positions and segment ids shrink to almost nothing, token ids by a
third or so), and a `Packed` element stays packed while a runner passes it
through: only `unpack()` does the work.
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, Iterator, Mapping, Protocol, TypeVar

import numpy as np

_LEVEL = 1
HOLD_BYTES = 32 << 20


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


class Packed:
    """A DocBatch or KeyedExamples on its way through a shuffle."""

    def __init__(self, value: ArrayBundle):
        self._kind = type(value)
        self._arrays = pack_arrays(value.to_arrays())

    def unpack(self):
        return self._kind.from_arrays(unpack_arrays(self._arrays))

    def __len__(self) -> int:
        """Bytes in transit (what a runner holds)."""
        return sum(len(entry[-1]) for entry in self._arrays)


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
        """Every key's parts, merged, in key order; nothing is held afterwards."""
        parts, self._parts, self._held = self._parts, {}, 0
        for key in sorted(parts):
            yield key, self._concat(parts[key])
