"""Token ids back to pieces and text with the build's own tokenizer, special ids by their names."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np

from readers.records import open_binary
from transforms.vocab import WORD_START, Vocab, sentinel_piece

PAD_NAME, EOS_NAME = "<pad>", "</s>"


class TokenizerMismatch(ValueError):
    """The tokenizer file is not the one the version was built with."""


class Tokens:
    """Decodes ids of one version: SentencePiece for the model's ordinary pieces, names for every special id.

    Special ids come from the manifest (`tokenizer.special_ids`), never from
    fixed numbers: ids the model defines as control symbols and the ids
    appended past the model's pieces are both shown by name (`[MASK]`,
    `<extra_id_3>`, `</s>`).
    """

    def __init__(self, model_proto: bytes, entry: Mapping[str, Any]):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        vocab = Vocab.from_manifest(entry)
        self.pad, self.eos, self.unk = vocab.pad, vocab.eos, vocab.unk
        self.sentinels = np.asarray(vocab.sentinels, dtype=np.int64)
        self.specials: dict[str, int] = {name: int(i) for name, i in vocab.specials.items()}
        self.names: dict[int, str] = {self.pad: PAD_NAME, self.eos: EOS_NAME}
        self.names.update({i: name for name, i in self.specials.items()})
        self.names.update({int(i): sentinel_piece(k) for k, i in enumerate(self.sentinels.tolist())})
        model_size = self.sp.get_piece_size()
        size = max(int(entry["vocab_size"]), max(self.names) + 1)
        table = np.array([self.sp.id_to_piece(i) for i in range(model_size)] + [""] * (size - model_size), dtype=object)
        for i, name in self.names.items():
            table[i] = name
        self.piece_table = table
        self.is_named = np.zeros(size, dtype=bool)
        self.is_named[list(self.names)] = True

    @classmethod
    def for_manifest(cls, manifest: Mapping[str, Any], override: str | None = None) -> "Tokens":
        """The version's tokenizer (or `override`), refused unless its sha256 is the manifest's."""
        entry = manifest["tokenizer"]
        path = override or entry["path"]
        try:
            with open_binary(path) as f:
                proto = f.read()
        except FileNotFoundError:
            raise TokenizerMismatch(f"the tokenizer {path} is not there; pass the model the version was built with as --tokenizer") from None
        digest = hashlib.sha256(proto).hexdigest()
        if digest != entry["sha256"]:
            raise TokenizerMismatch(
                f"the tokenizer {path} has sha256 {digest}, but this version was built with sha256 {entry['sha256']} "
                f"({entry['path']}); pass that model as --tokenizer"
            )
        return cls(proto, entry)

    def pieces(self, ids: np.ndarray) -> list[str]:
        return self.piece_table[np.asarray(ids, dtype=np.int64)].tolist()

    def text(self, ids: np.ndarray) -> str:
        """Ordinary runs decoded by SentencePiece, each special id as its name; a run keeps the space its first piece starts with."""
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
            text = self.sp.decode(run.tolist())
            if out and self.piece_table[run[0]].startswith(WORD_START):
                text = " " + text
            out.append(text)
        return "".join(out)

    def describe(self, ids: np.ndarray) -> dict[str, Any]:
        """What `show --json` prints for a run of ids: its text and its pieces (the pieces map back to the ids one to one)."""
        return {"text": self.text(ids), "tokens": self.pieces(ids)}
