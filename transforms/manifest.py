"""The manifest and the publish step: the last thing a build writes.

`manifest.json` is written after every shard and dead-letter file exists and
has been verified; its presence means the version is complete. Then `LATEST`
is pointed at the version (write to a temporary name, rename), so readers that
follow `LATEST` only ever see complete versions. Last, a rebuild prunes: old
complete versions beyond what it keeps, and leftovers of killed runs. All of
it runs inside the pipeline, so a job whose launcher does not wait for it (a
Dataflow Flex Template) publishes and prunes too.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
from typing import Any, Mapping, Sequence

import apache_beam as beam

from transforms.objectives.base import Objective
from transforms.storage import delete_files, delete_tree, exists, has_files, join, match, read_text, temporary_dir, write_atomically
from transforms.write import shard_name

MANIFEST = "manifest.json"
LATEST = "LATEST"
VERSIONS = "versions"
FORMAT_VERSION = 2
SOURCE_PACKAGES = ("pipelines", "transforms", "schemas", "runners", "readers")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def code_version() -> dict[str, str]:
    """The package version and a hash of every module, so a code change shows in the fingerprint.

    Only package directories count (those with `__init__.py`): the DAG and the
    template launcher beside them are not installed with the package, and a
    checkout and an installed copy of one commit must hash the same.
    """
    from importlib import import_module, metadata

    try:
        version = metadata.version("tokenmill")
    except metadata.PackageNotFoundError:
        version = "unknown"
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        root = os.path.dirname(import_module(package).__file__)
        for directory, dirs, files in sorted(os.walk(root)):
            if "__init__.py" not in files:
                continue
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


def expected_shard_paths(manifest: Mapping[str, Any]) -> set[str]:
    """Every shard file a version with this manifest's config holds (empty shards are written too)."""
    config = manifest["config"]
    objective = manifest["objective"]["name"]
    return {
        f"{split}/{shard_name(objective, shard, n, fmt, config['compression'])}"
        for split, n in config["num_shards_by_split"].items()
        for shard in range(n)
        for fmt in config["formats"]
    }


def read_latest(output: str) -> str | None:
    """The version `OUT/LATEST` names, or None before the first publish."""
    text = read_text(join(output, LATEST))
    return text.strip() if text else None


def read_manifest(version_dir: str) -> dict[str, Any] | None:
    """A version's manifest, or None while the version is incomplete."""
    text = read_text(join(version_dir, MANIFEST))
    return json.loads(text) if text is not None else None


@dataclasses.dataclass(frozen=True)
class Retention:
    """What a rebuild keeps when it publishes.

    The newest `keep` complete versions stay, and always the one `LATEST`
    names. An incomplete version (no manifest) whose newest file was written
    before `stale_before` (epoch seconds: the launch of the publishing run) is
    the leftover of a killed run and goes; a newer one may be a run in progress.
    """

    keep: int
    stale_before: float


@dataclasses.dataclass(frozen=True)
class VersionDir:
    """One `versions/<name>/` as a listing shows it."""

    name: str
    complete: bool
    completed_at: float
    last_write: float


def scan_versions(output: str) -> list[VersionDir]:
    """Every version directory under `output`, from one listing of its files (local or object store)."""
    prefix = join(output, VERSIONS, "")
    files: dict[str, list] = {}
    for meta in match(prefix + "**"):
        name, _, rest = meta.path[len(prefix) :].partition("/")
        files.setdefault(name, []).append((rest, meta.last_updated_in_seconds))
    versions = []
    for name, entries in sorted(files.items()):
        completed = [t for rest, t in entries if rest == MANIFEST]
        versions.append(VersionDir(name, bool(completed), max(completed, default=0.0), max(t for _, t in entries)))
    return versions


def versions_to_delete(versions: Sequence[VersionDir], latest: str | None, current: str, retention: Retention) -> list[str]:
    """Names of the versions a publish removes; never `latest`, never `current` (the version being published)."""
    complete = sorted((v for v in versions if v.complete), key=lambda v: (v.completed_at, v.name), reverse=True)
    doomed = [v.name for v in complete[retention.keep :]]
    doomed += [v.name for v in versions if not v.complete and v.last_write < retention.stale_before]
    return sorted(name for name in doomed if name not in (latest, current))


def prune_versions(output: str, retention: Retention, current: str) -> list[str]:
    """Apply `retention` under `output`; return the names of the versions it removed.

    A version loses its manifest first, so a prune killed half-way leaves an
    incomplete version (which readers ignore and the next rebuild removes),
    never a "complete" one with files missing.
    """
    doomed = versions_to_delete(scan_versions(output), read_latest(output), current, retention)
    for name in doomed:
        version_dir = join(output, VERSIONS, name)
        if exists(join(version_dir, MANIFEST)):
            delete_files([join(version_dir, MANIFEST)])
        delete_tree(version_dir)
    return doomed


def remove_incomplete_versions(output: str) -> list[str]:
    """Delete every version without a manifest but the one `LATEST` names, and the `.tmp/` prefix of complete ones; the names removed.

    What failed builds leave behind: their shards so far and their temporary
    files, all of them under the version (a complete version holds a `.tmp/`
    prefix only if its publish was killed after writing the manifest). Only
    safe while no build writes to `output` (a running build's version is
    incomplete too).
    """
    latest = read_latest(output)
    versions = scan_versions(output)
    doomed = [v.name for v in versions if not v.complete and v.name != latest]
    for name in doomed:
        delete_tree(join(output, VERSIONS, name))
    for version in versions:
        temporary = temporary_dir(join(output, VERSIONS, version.name))
        if version.complete and has_files(temporary):
            delete_tree(temporary)
    return doomed


class IncompleteVersion(RuntimeError):
    """The shards handed to Publish are not every shard the config makes; nothing is published."""


class Publish(beam.DoFn):
    """Write `manifest.json` once everything else is written and verified, move `LATEST`, then prune.

    The version's `.tmp/` prefix (transit files, leftovers of killed writers)
    is deleted before the manifest is written; the manifest's and `LATEST`'s
    own temporaries go through it too, so it is deleted again at the end and
    a published version holds only what its manifest lists.

    `retention` None (a plain `build`) deletes no version.
    """

    def __init__(self, output: str, version: str, static: Mapping[str, Any], objective: Objective, retention: Retention | None = None):
        self._output = output
        self._version = version
        self._static = dict(static)
        self._objective = objective
        self._retention = retention

    def process(self, unused, counters, shards, errors):
        missing = sorted(expected_shard_paths(self._static) - {s["path"] for s in shards})
        if missing:
            raise IncompleteVersion(f"{len(missing)} shards were not written, e.g. {missing[0]}; not publishing {self._version}")
        version_dir = join(self._output, VERSIONS, self._version)
        temporary = temporary_dir(version_dir)
        delete_tree(temporary)
        manifest = assemble(self._static, self._objective, counters, shards, errors, utc_now())
        write_atomically(join(version_dir, MANIFEST), temporary, [dumps(manifest)])
        write_atomically(join(self._output, LATEST), temporary, [f"{self._version}\n".encode()])
        delete_tree(temporary)
        if self._retention is not None:
            for name in prune_versions(self._output, self._retention, self._version):
                logging.info("Published %s; removed version %s", self._version, name)
        yield manifest
