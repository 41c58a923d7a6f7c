"""Where tokenmill's files live: paths, raw opens, atomic writes, temporaries, listing and deletes.

Every file goes through Beam's FileSystems, so a local path, `gs://` and
every other registered scheme work alike, and always without Beam's own
decompression (the readers detect truncation themselves). Beam is imported
inside the functions: a module that only builds paths stays Beam-free.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any, Iterable, Iterator

TEMPORARY = ".tmp"  # a version's temporary prefix: transit files, dead-letter parts, files being written
MAX_READ_BUFFER = 16 << 20  # Beam's own GCS read buffer


def is_remote(path: str) -> bool:
    """Whether `path` names an object store (`gs://...`) rather than this machine's disk."""
    return "://" in path


def absolute(path: str) -> str:
    """A local path made absolute (the workers' working directory is not the launcher's); a remote one as it is."""
    return path if is_remote(path) else os.path.abspath(path)


def join(*parts: str) -> str:
    """Join path parts with '/', which every Beam filesystem (local and gs://) accepts."""
    return "/".join(p.rstrip("/") for p in parts[:-1]) + "/" + parts[-1]


def temporary_dir(version_dir: str) -> str:
    """Where a build keeps every temporary file (transit, dead-letter parts, files not yet renamed).

    One prefix, deleted at once by Publish (or with the version by a clean-up).
    """
    return join(version_dir, TEMPORARY)


def temporary_name(temporary_dir: str, path: str) -> str:
    """A fresh name under `temporary_dir` for a file to be renamed to `path` once written.

    Two writers of one file never share one.
    """
    return join(temporary_dir, f"{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}")


def make_parent(path: str) -> None:
    """Create a local file's directory, which a rename into it needs; an object store has no directories to make."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)


def open_raw(path: str, fetch_bytes: int | None = None):
    """Open for reading, as stored.

    `fetch_bytes`: how much to download at a time, for a caller that reads
    a known part of the file. Beam's GCS reader fetches 16 MiB at every open
    and seek, so a 4 MiB range would download 16 MiB (or all the rest of the file).
    """
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    if fetch_bytes is not None and path.startswith("gs://"):
        gcs = FileSystems.get_filesystem(path)._gcsIO()  # noqa: SLF001 — the one way to size the read buffer
        return gcs.open(path, "r", read_buffer_size=max(1, min(fetch_bytes, MAX_READ_BUFFER)))
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def create_raw(path: str):
    """Open for writing, as given (no compression added)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_raw(path) as f:
        return f.read()


def read_text(path: str) -> str | None:
    """A small UTF-8 file's text; None if there is no such file."""
    if not exists(path):
        return None
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    with create_raw(absolute(path)) as f:
        f.write(data)


def read_blocks(paths: Iterable[str], block: int = 4 << 20) -> Iterator[bytes]:
    """The bytes of `paths` one after the other, `block` at a time."""
    for path in paths:
        with open_raw(path) as f:
            while data := f.read(block):
                yield data


def exists(path: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def match(pattern: str, limit: int | None = None) -> list[Any]:
    """The files a glob matches, as Beam's FileMetadata (path, size_in_bytes, ...); at most `limit`."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.match([pattern], limits=None if limit is None else [limit])[0].metadata_list


def checksum(path: str) -> str:
    """The store's own checksum of a file (an object store's hash, without reading the object)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.checksum(path)


def has_files(directory: str) -> bool:
    """Whether any file is stored under `directory`, from a listing that stops at the first file.

    `exists` cannot tell: an object store has no directories, so on `gs://`
    it is false for every prefix, whatever the prefix holds.
    """
    return bool(match(join(directory, "**"), limit=1))


def delete_files(paths: list[str]) -> None:
    from apache_beam.io.filesystems import FileSystems

    FileSystems.delete(paths)


def delete_tree(directory: str) -> None:
    """Delete everything under `directory`.

    A path with a trailing '/' is a prefix to Beam's object stores: GCS lists
    it and deletes in batches of 100 objects a request. A list of paths would
    cost a lookup and a one-object batch each (hours for the transit files of
    a large build). A local directory is removed as a tree.
    """
    if is_remote(directory):
        delete_files([join(directory, "")])
    elif exists(directory):
        delete_files([directory])


class AtomicFile:
    """A file written under a temporary name in `temporary_dir` and renamed to `path` by `commit`.

    `commit` gives its size and sha256. Until then, nothing is under the
    final name: a writer that fails or is killed leaves only its file under
    `temporary_dir` (a build's `.tmp/` prefix, which Publish deletes whole).
    """

    def __init__(self, path: str, temporary_dir: str):
        self.path = path
        self._tmp = temporary_name(temporary_dir, path)
        self._out = create_raw(self._tmp)
        self._digest, self._size = hashlib.sha256(), 0

    def write(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self._digest.update(chunk)
        self._size += len(chunk)

    def abort(self) -> None:
        """Stop writing, leaving the temporary file for Publish to remove."""
        self._out.close()

    def commit(self) -> dict:
        from apache_beam.io.filesystems import FileSystems

        self._out.close()
        make_parent(self.path)
        FileSystems.rename([self._tmp], [self.path])
        return {"bytes": self._size, "sha256": self._digest.hexdigest()}


def write_atomically(path: str, temporary_dir: str, chunks: Iterable[bytes]) -> dict:
    """Write `chunks` to a temporary name in `temporary_dir`, then rename it to `path`; return size and sha256."""
    out = AtomicFile(path, temporary_dir)
    try:
        for chunk in chunks:
            out.write(chunk)
    except BaseException:
        out.abort()
        raise
    return out.commit()
