"""Progress of a local run, shared through small files.

The local runner executes the pipeline synchronously in worker processes, so
the launcher cannot poll Beam metrics while it runs. Instead each worker's
tokenize step rewrites one small JSON file with its running totals every
second or so; the launcher sums the files and prints a line. Remote runners
pass no directory, and nothing is written.
"""

from __future__ import annotations

import json
import os
import time
import uuid

FIELDS = ("documents", "tokens", "text_bytes", "input_bytes")
_INTERVAL = 1.0


class ProgressFile:
    def __init__(self, directory: str | None):
        self._path = os.path.join(directory, f"{os.getpid()}-{uuid.uuid4().hex}.json") if directory else None  # the pid: which worker did what
        self._totals = dict.fromkeys(FIELDS, 0)
        self._written = 0.0

    def add(self, **counts: int) -> None:
        if not self._path:
            return
        for k, v in counts.items():
            self._totals[k] += int(v)
        if time.monotonic() - self._written >= _INTERVAL:
            self.flush()

    def flush(self) -> None:
        if not self._path:
            return
        tmp = f"{self._path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self._totals, f)
        os.replace(tmp, self._path)
        self._written = time.monotonic()


def read_totals(directory: str) -> dict[str, int]:
    """Sum of every worker's latest totals."""
    totals = dict.fromkeys(FIELDS, 0)
    for name in os.listdir(directory):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name)) as f:
                counts = json.load(f)
        except (OSError, ValueError):
            continue
        for k in FIELDS:
            totals[k] += int(counts.get(k, 0))
    return totals
