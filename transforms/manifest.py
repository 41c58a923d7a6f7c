"""The manifest and the publish step: the last thing a build writes.

`manifest.json` is written after every shard and dead-letter file exists; its
presence means the version is complete. Then `LATEST` is pointed at the
version (write to a temporary name, rename), so readers that follow `LATEST`
only ever see complete versions.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from typing import Any, Mapping, Sequence

import apache_beam as beam

from transforms.objectives.base import Objective
from transforms.write import join, write_atomically

MANIFEST = "manifest.json"
LATEST = "LATEST"
VERSIONS = "versions"
FORMAT_VERSION = 1
SOURCE_PACKAGES = ("pipelines", "transforms", "schemas", "runners", "readers")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def code_version() -> dict[str, str]:
    """The package version and a hash of every source file, so a code change shows in the fingerprint."""
    from importlib import import_module, metadata

    try:
        version = metadata.version("tokenmill")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        root = os.path.dirname(import_module(package).__file__)
        for directory, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(directory, name)
                digest.update(os.path.relpath(path, os.path.dirname(root)).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return {"version": version, "source_sha256": digest.hexdigest()}


def summarize_counters(counters: Mapping[str, int], objective: Objective) -> dict[str, Any]:
    """Group the raw counters: documents read/used/dropped by reason, and the objective's own."""
    dropped = {k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("dropped/")}
    objective_counts = {k.split("/", 1)[1]: v for k, v in counters.items() if k.startswith("objective/")}
    return {
        "records_read": counters.get("records_read", 0),
        "documents_used": counters.get("documents_used", 0),
        "documents_dropped": dict(sorted(dropped.items())),
        "documents_dropped_total": sum(dropped.values()),
        "objective": dict(sorted(objective_counts.items())),
        "objective_summary": objective.summarize(objective_counts),
    }


def split_totals(shards: Sequence[Mapping[str, Any]], positions_per_example: int) -> dict[str, Any]:
    """Examples, tokens, padding fraction and bytes per split (counted once, from the first format)."""
    totals: dict[str, Any] = {}
    for shard in shards:
        t = totals.setdefault(shard["split"], {"examples": 0, "tokens": 0, "shards": {}, "bytes": 0})
        t["shards"][shard["format"]] = t["shards"].get(shard["format"], 0) + 1
        t["bytes"] += shard["bytes"]
    for split, t in totals.items():
        first_format = sorted(t["shards"])[0]
        counted = [s for s in shards if s["split"] == split and s["format"] == first_format]
        t["examples"] = sum(s["examples"] for s in counted)
        t["tokens"] = sum(s["tokens"] for s in counted)
        positions = t["examples"] * positions_per_example
        t["padding_fraction"] = round(1 - t["tokens"] / positions, 6) if positions else 0.0
    return dict(sorted(totals.items()))


def assemble(static: Mapping[str, Any], objective: Objective, counters, shards, errors, finished_at: str) -> dict[str, Any]:
    shards = sorted(shards, key=lambda s: s["path"])
    positions = sum(f.length for f in objective.schema.features if f.counts_tokens)
    return {
        **static,
        "counters": summarize_counters(counters, objective),
        "totals": split_totals(shards, positions),
        "shards": shards,
        "errors": sorted(errors, key=lambda e: e["path"]),
        "finished_at": finished_at,
    }


def dumps(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


class Publish(beam.DoFn):
    """Write `manifest.json` once everything else is written, then move `LATEST`."""

    def __init__(self, output: str, version: str, static: Mapping[str, Any], objective: Objective):
        self._output = output
        self._version = version
        self._static = dict(static)
        self._objective = objective

    def process(self, unused, counters, shards, errors):
        manifest = assemble(self._static, self._objective, counters, shards, errors, utc_now())
        write_atomically(join(self._output, VERSIONS, self._version, MANIFEST), [dumps(manifest)])
        write_atomically(join(self._output, LATEST), [f"{self._version}\n".encode()])
        yield manifest
