"""Counters that end up in the manifest.

Beam metrics are for watching a run; they are not readable from inside a
pipeline on every runner. So each step also emits its counts as data (a small
dict on the "counters" output), combined into one dict for the manifest.
"""

from __future__ import annotations

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


class SumCounters(beam.CombineFn):
    """The counts of every step, summed key by key into one dict (sorted by name): what Publish gets, not a list of every step's dicts."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, total: dict[str, int], counts: Mapping[str, int]) -> dict[str, int]:
        for name, value in counts.items():
            total[name] = total.get(name, 0) + value
        return total

    def merge_accumulators(self, totals: Iterable[dict[str, int]]) -> dict[str, int]:
        merged: dict[str, int] = {}
        for total in totals:
            self.add_input(merged, total)
        return merged

    def extract_output(self, total: dict[str, int]) -> dict[str, int]:
        return dict(sorted(total.items()))
