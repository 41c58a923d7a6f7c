"""Counters that end up in the manifest.

Beam metrics are for watching a run; they are not readable from inside a
pipeline on every runner. So each step also emits its counts as data (a small
dict on the "counters" output), and the publish step sums them into the manifest.
"""

from __future__ import annotations

import collections
from typing import Iterable, Iterator, Mapping

import apache_beam as beam

COUNTERS = "counters"


def emit_counters(counts: Mapping[str, int]) -> Iterator[beam.pvalue.TaggedOutput]:
    """Increment Beam metrics and emit the same counts as data."""
    counts = {k: int(v) for k, v in counts.items() if v}
    for name, value in counts.items():
        beam.metrics.Metrics.counter("tokenmill", name).inc(value)
    if counts:
        yield beam.pvalue.TaggedOutput(COUNTERS, counts)


def sum_counters(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The counts of every step, summed key by key (sorted by name)."""
    total: collections.Counter[str] = collections.Counter()
    for counts in parts:
        total.update(counts)
    return dict(sorted(total.items()))
