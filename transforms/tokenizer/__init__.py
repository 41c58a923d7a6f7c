"""The tokenizer a build uses: which kind a file is, its files, and loading it.

`--tokenizer` names a SentencePiece `.model`, a Hugging Face `tokenizer.json`
(any file name), or a directory holding `tokenizer.json`. The kind is told
from the bytes (a JSON object with a `model` is a `tokenizers` file; anything
else must load as SentencePiece), so a wrong file is refused, never guessed.
The files travel with the version under `tokenizer/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
from typing import Any, Callable, Mapping

from transforms.tokenizer.base import ROLES, Tokenizer, TokenizerError
from transforms.tokenizer.hf_file import CONFIG_FILES, HFTokenizer, is_tokenizers_json, roles_from_configs
from transforms.tokenizer.sentencepiece_model import SentencePieceTokenizer

__all__ = ["ROLES", "Tokenizer", "TokenizerError", "TokenizerFiles", "read_tokenizer_files", "tokenizer_from_bytes"]

COPY_DIR = "tokenizer"
HF_FILE = "tokenizer.json"
SENTENCEPIECE, TOKENIZERS = SentencePieceTokenizer.kind, HFTokenizer.kind


def tokenizer_from_bytes(kind: str, data: bytes) -> Tokenizer:
    return SentencePieceTokenizer.from_bytes(data) if kind == SENTENCEPIECE else HFTokenizer(data)


@dataclasses.dataclass(frozen=True)
class TokenizerFiles:
    """The tokenizer's file (first) and the role files beside a `tokenizer.json`, by file name."""

    kind: str
    files: Mapping[str, bytes]

    @property
    def main(self) -> str:
        return next(iter(self.files))

    @property
    def data(self) -> bytes:
        return self.files[self.main]

    @property
    def sha256(self) -> str:
        """The main file's sha256: the manifest's `tokenizer.sha256`."""
        return hashlib.sha256(self.data).hexdigest()

    def fingerprint(self) -> str:
        """What the build's fingerprint takes: the main file's sha256, or with role files the sha256 of them all."""
        if len(self.files) == 1:
            return self.sha256
        return hashlib.sha256(json.dumps({n: hashlib.sha256(d).hexdigest() for n, d in self.files.items()}, sort_keys=True).encode()).hexdigest()

    def load(self) -> Tokenizer:
        return tokenizer_from_bytes(self.kind, self.data)

    def named_roles(self) -> dict[str, tuple[str, str]]:
        """Role -> (token, file) named by the role files (empty for SentencePiece, whose model says its own)."""
        return roles_from_configs({n: d for n, d in self.files.items() if n in CONFIG_FILES})

    def manifest_entry(self) -> dict[str, Any]:
        """Where the copy lives in the version (relative paths) and each file's sha256."""
        return {
            "kind": self.kind,
            "path": posixpath.join(COPY_DIR, self.main),
            "sha256": self.sha256,
            "files": [{"path": posixpath.join(COPY_DIR, n), "format": "tokenizer", "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in self.files.items()],
        }


def read_tokenizer_files(path: str, read: Callable[[str], bytes], exists: Callable[[str], bool], is_dir: Callable[[str], bool]) -> TokenizerFiles:
    """The files `--tokenizer path` names, told apart by content; `TokenizerError` for a file that is neither kind."""
    if is_dir(path):
        main = posixpath.join(path.rstrip("/"), HF_FILE)
        if not exists(main):
            raise TokenizerError(f"the directory holds no {HF_FILE}")
    else:
        main = path
    data = read(main)
    name = posixpath.basename(main.rstrip("/")) or HF_FILE
    if data.lstrip()[:1] == b"{":
        if not is_tokenizers_json(data):
            raise TokenizerError("is JSON but not a Hugging Face tokenizers file (no \"model\" with a \"type\"); pass a tokenizer.json or a SentencePiece .model")
        files = {name: data}
        for config in CONFIG_FILES:
            beside = posixpath.join(posixpath.dirname(main), config)
            if exists(beside):
                files[config] = read(beside)
        return TokenizerFiles(TOKENIZERS, files)
    try:
        SentencePieceTokenizer.from_bytes(data)
    except TokenizerError:
        raise TokenizerError("is neither a SentencePiece model nor a Hugging Face tokenizer.json") from None
    return TokenizerFiles(SENTENCEPIECE, {name: data})
