"""Check written files against what the manifest says about them.

`check_file` re-reads one file through Beam's FileSystems (so `gs://` works)
and compares its size and sha256 with the manifest's, then checks what is
inside: every TFRecord frame's CRCs and the record count, a Parquet file's
footer and row count, an ArrayRecord file's records and their count, a
dead-letter file's line count. The build pipeline
runs it on every file it wrote, one element per file, before it publishes;
`tokenmill verify` runs it on every file of a published version.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import shutil
import tempfile
import zlib
from typing import Any, Mapping

import apache_beam as beam

from transforms.codec import BrokenFraming, scan_frames
from transforms.manifest import LATEST, MANIFEST, VERSIONS, expected_shard_paths, read_latest, read_manifest
from transforms.storage import exists, is_remote, join, match, open_raw

_BLOCK = 4 << 20


class TFRecordFrames:
    """TFRecord framing checked over a stream of blocks: length, its CRC, the record, its CRC."""

    def __init__(self):
        self.records = 0
        self.problem: str | None = None
        self._buffer = bytearray()
        self._offset = 0

    def feed(self, data: bytes) -> None:
        if self.problem:
            return
        self._buffer += data
        pos = 0
        try:
            for end, _, intact in scan_frames(self._buffer):
                if not intact:
                    self.problem = f"record {self.records} at byte {self._offset + pos}: the record's CRC does not match"
                    return
                self.records += 1
                pos = end
        except BrokenFraming:
            self.problem = f"record {self.records} at byte {self._offset + pos}: the length's CRC does not match"
            return
        del self._buffer[:pos]
        self._offset += pos

    def close(self) -> None:
        if not self.problem and self._buffer:
            self.problem = f"{len(self._buffer)} bytes after record {self.records} do not make a whole record (truncated)"


class _Gunzip:
    """Feeds the decompressed bytes of a gzip stream to `frames`."""

    def __init__(self, frames: TFRecordFrames):
        self._frames = frames
        self._decompressor = zlib.decompressobj(31)

    def feed(self, data: bytes) -> None:
        if self._frames.problem:
            return
        try:
            self._frames.feed(self._decompressor.decompress(data))
        except zlib.error as e:
            self._frames.problem = f"not a valid gzip stream: {e}"

    def close(self) -> None:
        if not self._frames.problem and not self._decompressor.eof:
            self._frames.problem = "the gzip stream ends early (truncated)"
        self._frames.close()


def _parquet_rows(path: str) -> tuple[int | None, str | None]:
    import pyarrow.parquet as pq

    try:
        with open_raw(path) as f:
            return pq.ParquetFile(f).metadata.num_rows, None
    except Exception as e:  # noqa: BLE001 — any failure to read the footer is the finding
        return None, f"the Parquet footer cannot be read: {e}"


def _array_record_rows(path: str) -> tuple[int | None, str | None]:
    """An ArrayRecord file's record count, every record read (Riegeli checks each chunk's hash).

    ArrayRecord reads only local files: a remote one is copied to a local temporary file first.
    """
    from readers.array_record import count_records

    try:
        if not is_remote(path):
            return count_records(path), None
        with tempfile.NamedTemporaryFile(suffix=".array_record") as local:
            with open_raw(path) as f:
                shutil.copyfileobj(f, local, _BLOCK)
            local.flush()
            return count_records(local.name), None
    except Exception as e:  # noqa: BLE001 — any failure to read the file is the finding
        return None, f"the ArrayRecord file cannot be read: {e}"


def check_file(version_dir: str, entry: Mapping[str, Any], compression: str = "none") -> list[str]:
    """Everything wrong with one file the manifest lists (a shard, a dead-letter file, the tokenizer's copy); [] if nothing."""
    name = entry["path"]
    path = join(version_dir, name)
    if not exists(path):
        return [f"{name}: missing"]
    kind = entry.get("format", "errors")
    frames = TFRecordFrames() if kind == "tfrecord" else None
    stream = _Gunzip(frames) if frames and compression == "gzip" else frames
    digest, size, lines = hashlib.sha256(), 0, 0
    with open_raw(path) as f:
        while block := f.read(_BLOCK):
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n") if kind == "errors" else 0
            if stream:
                stream.feed(block)
    problems = []
    if size != entry["bytes"]:
        problems.append(f"{name}: {size:,} bytes, the manifest says {entry['bytes']:,}")
    if digest.hexdigest() != entry["sha256"]:
        problems.append(f"{name}: sha256 {digest.hexdigest()}, the manifest says {entry['sha256']}")
    if stream:
        stream.close()
        if frames.problem:
            problems.append(f"{name}: {frames.problem}")
        elif frames.records != entry["examples"]:
            problems.append(f"{name}: {frames.records:,} records, the manifest says {entry['examples']:,} examples")
    elif kind in ("parquet", "array_record"):
        rows, problem = (_parquet_rows if kind == "parquet" else _array_record_rows)(path)
        if problem:
            problems.append(f"{name}: {problem}")
        elif rows != entry["examples"]:
            problems.append(f"{name}: {rows:,} rows, the manifest says {entry['examples']:,} examples")
    elif kind == "errors" and lines != entry["records"]:
        problems.append(f"{name}: {lines:,} lines, the manifest says {entry['records']:,} records")
    return problems


def listing_problems(version_dir: str, manifest: Mapping[str, Any]) -> list[str]:
    """What one listing shows is wrong: files of the manifest missing or of another size (no file is read)."""
    sizes = {m.path: m.size_in_bytes for m in match(join(version_dir, "**"))}
    problems = []
    for entry in _files(manifest):
        size = sizes.get(join(version_dir, entry["path"]))
        if size is None:
            problems.append(f"{entry['path']}: missing")
        elif size != entry["bytes"]:
            problems.append(f"{entry['path']}: {size:,} bytes, the manifest says {entry['bytes']:,}")
    return problems


def stored_files(version_dir: str) -> set[str]:
    """Every file under `version_dir`, relative to it, from one listing."""
    prefix = join(version_dir, "")
    return {m.path[len(prefix) :] for m in match(prefix + "**")}


def _files(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(manifest["shards"]) + list(manifest["errors"]) + list(manifest["tokenizer"].get("files", ()))


@dataclasses.dataclass
class Report:
    """The outcome of verifying one version."""

    version_dir: str
    files: int = 0
    examples: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        if self.ok:
            return (
                f"OK: {self.version_dir}: {self.files} files, {self.examples:,} examples "
                "(sizes, sha256, example counts, TFRecord CRCs, Parquet footers)"
            )
        count = f"{len(self.problems)} problem" + ("s" if len(self.problems) > 1 else "")
        return "\n".join([f"FAILED: {self.version_dir}: {count}"] + [f"  {p}" for p in self.problems])


def resolve_version(path: str) -> tuple[str, list[str]]:
    """The version directory `path` means (itself, or the one its LATEST names) and any problem finding it."""
    path = path.rstrip("/")
    if exists(join(path, MANIFEST)):
        return path, []
    latest = read_latest(path)
    if latest is None:
        return path, [f"{path} holds neither {MANIFEST} nor {LATEST}: not a tokenmill output or version"]
    version_dir = join(path, VERSIONS, latest)
    if not exists(join(version_dir, MANIFEST)):
        return version_dir, [f"{LATEST} names {latest}, which has no {MANIFEST} (an incomplete version)"]
    return version_dir, []


def verify_version(path: str, threads: int = 8) -> Report:
    """Check every file of a version (or of the one `path/LATEST` names) against its manifest."""
    version_dir, problems = resolve_version(path)
    report = Report(version_dir, problems=problems)
    if problems:
        return report
    try:
        manifest = read_manifest(version_dir)
    except ValueError as e:
        report.problems.append(f"{MANIFEST}: not valid JSON ({e})")
        return report
    files = _files(manifest)
    listed = {entry["path"] for entry in files} | {MANIFEST}
    unlisted = (expected_shard_paths(manifest) | stored_files(version_dir)) - listed
    report.problems += [f"{p}: not listed in {MANIFEST}" for p in sorted(unlisted)]
    compression = manifest["config"]["compression"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for problems in pool.map(lambda entry: check_file(version_dir, entry, compression), files):
            report.problems += problems
    report.files = len(files)
    report.examples = sum(t["examples"] for t in manifest["totals"].values())
    return report


class VerificationFailed(RuntimeError):
    """A written file differs from what its writer recorded."""


class VerifyWritten(beam.DoFn):
    """Each element is a file's manifest entry; re-read the file and pass the entry on, or fail the run."""

    def __init__(self, version_dir: str, compression: str):
        self._version_dir = version_dir
        self._compression = compression

    def process(self, entry):
        problems = check_file(self._version_dir, entry, self._compression)
        if problems:
            raise VerificationFailed("; ".join(problems))
        yield entry


class VerifyVersion(beam.PTransform):
    """Verify a published version as a pipeline, one element per file (e.g. the nightly job when nothing changed)."""

    def __init__(self, version_dir: str, manifest: Mapping[str, Any]):
        super().__init__()
        self._version_dir = version_dir
        self._manifest = manifest

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(_files(self._manifest), reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            | "Verify" >> beam.ParDo(VerifyWritten(self._version_dir, self._manifest["config"]["compression"]))
        )
