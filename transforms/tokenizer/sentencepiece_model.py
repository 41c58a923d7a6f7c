"""A SentencePiece `.model` behind the `Tokenizer` interface, encoding exactly as tokenmill always has."""

from __future__ import annotations

import itertools

import numpy as np

from transforms.tokenizer.base import Tokenizer, TokenizerError

WORD_START = "\u2581"  # SentencePiece's mark of a piece that begins a word

_SHORT_TEXT_CHARS = 500  # below this average length, SentencePiece's lists beat its arrays (measured: sentences ~80 chars, documents ~3,500)


class SentencePieceTokenizer(Tokenizer):
    kind = "sentencepiece"

    def __init__(self, processor):
        self.sp = processor

    @classmethod
    def from_bytes(cls, model_proto: bytes) -> "SentencePieceTokenizer":
        import sentencepiece as spm

        try:
            return cls(spm.SentencePieceProcessor(model_proto=model_proto))
        except (RuntimeError, OSError) as e:
            raise TokenizerError(f"not a SentencePiece model: {(str(e).strip().splitlines() or [''])[0]}") from None

    @property
    def model_size(self) -> int:
        return self.sp.get_piece_size()

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """One `encode` call. SentencePiece returns a numpy array or a list per text; an array costs
        more to make, a list more per id. So many short texts (sentences) come back as lists, and
        long ones (documents) as arrays."""
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if sum(map(len, texts)) < _SHORT_TEXT_CHARS * len(texts):
            lists = self.sp.encode(texts, out_type=int, num_threads=1)
            lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
            flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum()))  # int64: 24 ns an id, int32: 40
            return flat.astype(np.int32), lengths
        arrays = self.sp.encode(texts, out_type="numpy", num_threads=1)
        lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        return np.concatenate(arrays).astype(np.int32, copy=False), lengths

    def encode_words(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, lengths = self.encode_flat(texts)
        return ids, lengths, self.starts_word()[ids]

    def pieces(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.model_size)]

    def piece_to_id(self, piece: str) -> int | None:
        i = self.sp.piece_to_id(piece)
        unk = self.sp.unk_id()
        return None if i == unk and piece != self.sp.id_to_piece(unk) else i

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def own_roles(self) -> dict[str, int]:
        ids = {"pad": self.sp.pad_id(), "eos": self.sp.eos_id(), "bos": self.sp.bos_id(), "unk": self.sp.unk_id()}
        return {role: i for role, i in ids.items() if i >= 0}

    def non_ordinary(self) -> np.ndarray:
        sp = self.sp
        return np.array([sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i) or sp.is_byte(i) for i in range(self.model_size)], dtype=bool)

    def starts_word(self) -> np.ndarray:
        return np.array([self.sp.id_to_piece(i).startswith(WORD_START) for i in range(self.model_size)], dtype=bool)
