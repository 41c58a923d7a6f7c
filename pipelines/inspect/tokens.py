"""Token ids back to pieces and text with the build's own tokenizer, special ids by their names."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Mapping

import numpy as np

from readers.records import open_binary
from transforms.tokenizer import SENTENCEPIECE, Tokenizer, tokenizer_from_bytes
from transforms.vocab import Vocab, sentinel_piece

PAD_NAME, EOS_NAME, BOS_NAME = "<pad>", "</s>", "<s>"


class TokenizerMismatch(ValueError):
    """The tokenizer file is not the one the version was built with."""


class Tokens:
    """Decodes ids of one version: the build's tokenizer for the ordinary pieces, names for every special id.

    Special ids come from the manifest (`tokenizer.special_ids`), never from
    fixed numbers: ids the tokenizer defines as control symbols and the ids
    appended past its pieces are both shown by name (`[MASK]`,
    `<extra_id_3>`, `</s>`).
    """

    def __init__(self, tokenizer: Tokenizer, entry: Mapping[str, Any]):
        self.tokenizer = tokenizer
        vocab = Vocab.from_manifest(entry)
        self.pad, self.eos, self.unk = vocab.pad, vocab.eos, vocab.unk
        self.sentinels = np.asarray(vocab.sentinels, dtype=np.int64)
        self.specials: dict[str, int] = {name: int(i) for name, i in vocab.specials.items()}
        self.names: dict[int, str] = {self.pad: PAD_NAME, self.eos: EOS_NAME}
        if vocab.bos is not None:
            self.names[vocab.bos] = BOS_NAME
        self.names.update({i: name for name, i in self.specials.items()})
        self.names.update({int(i): sentinel_piece(k) for k, i in enumerate(self.sentinels.tolist())})
        pieces = tokenizer.pieces()
        size = max(int(entry["vocab_size"]), max(self.names) + 1)
        table = np.array(pieces + [""] * (size - len(pieces)), dtype=object)
        for i, name in self.names.items():
            table[i] = name
        self.piece_table = table
        self.is_named = np.zeros(size, dtype=bool)
        self.is_named[list(self.names)] = True
        self.starts_word = np.ones(size, dtype=bool)
        self.starts_word[: len(pieces)] = tokenizer.starts_word()

    @classmethod
    def for_manifest(cls, manifest: Mapping[str, Any], override: str | None = None, root: str | None = None) -> "Tokens":
        """The tokenizer copy the version holds (under `root`, the version directory), or `override`; refused unless its sha256 is the manifest's.

        A version built before the copy existed names the path it was built from.
        """
        entry = manifest["tokenizer"]
        recorded = entry["path"] if root is None or "://" in entry["path"] or os.path.isabs(entry["path"]) else f"{root}/{entry['path']}"
        path = override or recorded
        try:
            with open_binary(path) as f:
                data = f.read()
        except FileNotFoundError:
            raise TokenizerMismatch(f"the tokenizer {path} is not there; pass the file the version was built with as --tokenizer") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise TokenizerMismatch(
                f"the tokenizer {path} has sha256 {digest}, but this version was built with sha256 {entry['sha256']} "
                f"({entry.get('source', entry['path'])}); pass that file as --tokenizer"
            )
        return cls(tokenizer_from_bytes(entry.get("kind", SENTENCEPIECE), data), entry)

    def pieces(self, ids: np.ndarray) -> list[str]:
        return self.piece_table[np.asarray(ids, dtype=np.int64)].tolist()

    def text(self, ids: np.ndarray) -> str:
        """Ordinary runs decoded by the tokenizer, each special id as its name; a run keeps the space its first piece starts with."""
        ids = np.asarray(ids, dtype=np.int64)
        if not ids.size:
            return ""
        named = self.is_named[ids]
        cuts = np.flatnonzero(np.diff(named.astype(np.int8))) + 1
        out: list[str] = []
        for run in np.split(ids, cuts):
            if self.is_named[run[0]]:
                out.append((" " if out else "") + " ".join(self.names[i] for i in run.tolist()))
                continue
            text = self.tokenizer.decode(run.tolist())
            if out and self.starts_word[run[0]] and not text.startswith(" "):
                text = " " + text
            out.append(text)
        return "".join(out)

    def describe(self, ids: np.ndarray) -> dict[str, Any]:
        """What `show --json` prints for a run of ids: its text and its pieces (the pieces map back to the ids one to one)."""
        return {"text": self.text(ids), "tokens": self.pieces(ids)}
