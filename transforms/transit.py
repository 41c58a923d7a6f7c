"""How bulk data crosses a shuffle: arrays compacted and compressed, unpacked by the step that uses it.

Everything a stage emits crosses a shuffle, and a local runner holds every
shuffle in memory until the run ends. So integer arrays travel in the
smallest unsigned dtype that holds their values, zstd-compressed (padding,
masks, positions and segment ids shrink to almost nothing, token ids by a
third or so), and a `Packed` element stays packed while a runner passes it
through: only `unpack()` does the work.
"""

from __future__ import annotations

from typing import Mapping, Protocol

import numpy as np

_LEVEL = 1


class ArrayBundle(Protocol):
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
