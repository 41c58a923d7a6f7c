"""Give the heap's free pages back to the operating system between large elements.

A worker handles one large element at a time (a bucket of documents, a
shard of examples) and frees it before the next; glibc keeps much of that
freed memory mapped, so the worker's resident size creeps up to the sum of
its largest moments rather than the largest one. `malloc_trim` after each
element keeps it near one element's worth. Elsewhere than glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
