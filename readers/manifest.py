"""Find a version and its shards from the manifest; no Beam, no TensorFlow.

A trainer points at the output root (it follows `LATEST`) or at one version
directory. Only complete versions have a `manifest.json`, so a reader never
sees a half-written corpus.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from schemas import Schema

MANIFEST = "manifest.json"
LATEST = "LATEST"


def _read_text(path: str) -> str:
    if "://" in path:
        import fsspec  # remote stores (gs://, s3://) through fsspec's drivers, e.g. gcsfs

        with fsspec.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _exists(path: str) -> bool:
    try:
        _read_text(path)
        return True
    except FileNotFoundError:
        return False


def version_dir(path: str) -> str:
    """`path` itself if it holds a manifest, else the version `path/LATEST` names."""
    path = path.rstrip("/")
    if _exists(f"{path}/{MANIFEST}"):
        return path
    try:
        latest = _read_text(f"{path}/{LATEST}").strip()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} holds neither {MANIFEST} nor {LATEST}: not a tokenmill output") from None
    return f"{path}/versions/{latest}"


@dataclasses.dataclass(frozen=True)
class ShardFile:
    """One shard file of a split and the number of examples the manifest records for it."""

    path: str
    examples: int


class Corpus:
    """One complete version: its manifest, schema and shard files."""

    def __init__(self, path: str):
        self.root = version_dir(path)
        self.manifest: dict[str, Any] = json.loads(_read_text(f"{self.root}/{MANIFEST}"))
        self.schema = Schema.from_manifest(self.manifest["objective"]["name"], self.manifest["features"])

    @property
    def special_ids(self) -> dict[str, Any]:
        return self.manifest["tokenizer"]["special_ids"]

    @property
    def tokenizer_path(self) -> str:
        """The copy of the build's tokenizer file the version holds (`tokenizers.Tokenizer.from_file` or SentencePiece loads it)."""
        path = self.manifest["tokenizer"]["path"]
        return path if "://" in path or path.startswith("/") else f"{self.root}/{path}"

    @property
    def vocab_size(self) -> int:
        """Every id in the shards is below it: a model's embedding table needs this many rows."""
        return int(self.manifest["tokenizer"]["vocab_size"])

    def shard_entries(self, split: str = "train", fmt: str = "tfrecord") -> list[dict[str, Any]]:
        """The manifest's entries (path, examples, bytes, sha256, ...) of a split's shards in one format, in shard order."""
        entries = sorted((s for s in self.manifest["shards"] if s["split"] == split and s["format"] == fmt), key=lambda s: s["shard"])
        if not entries:
            available = sorted({(s["split"], s["format"]) for s in self.manifest["shards"]})
            raise ValueError(f"no {fmt} shards for split {split!r}; this version has {available}")
        return entries

    def shards(self, split: str = "train", fmt: str = "tfrecord") -> list[ShardFile]:
        """The shards of a split in one format, in shard order, with their example counts."""
        return [ShardFile(f"{self.root}/{s['path']}", int(s["examples"])) for s in self.shard_entries(split, fmt)]

    def files(self, split: str = "train", fmt: str = "tfrecord") -> list[str]:
        """Shard paths of a split in one format, in shard order."""
        return [s.path for s in self.shards(split, fmt)]

    def num_examples(self, split: str = "train") -> int:
        return self.manifest["totals"][split]["examples"]

    @property
    def tfrecord_compression(self) -> str | None:
        return "GZIP" if self.manifest["config"]["compression"] == "gzip" else None
