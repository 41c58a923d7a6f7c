"""Counters that end up in the manifest.

Beam metrics are for watching a run; they are not readable from inside a
pipeline on every runner. So each step also emits its counts as data (a small
dict on the "counters" output) and the pipeline sums them into the manifest.
"""

from __future__ import annotations

from typing import Iterator, Mapping

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
    """Sum dicts of counts key by key."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, acc: dict[str, int], counts: Mapping[str, int]) -> dict[str, int]:
        for k, v in counts.items():
            acc[k] = acc.get(k, 0) + v
        return acc

    def merge_accumulators(self, accs) -> dict[str, int]:
        out: dict[str, int] = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc: dict[str, int]) -> dict[str, int]:
        return dict(sorted(acc.items()))
