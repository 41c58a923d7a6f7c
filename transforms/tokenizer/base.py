"""What the pipeline asks of a tokenizer, whichever library it comes from.

The objectives, readers, `show` and `report` see only this interface: batch
encoding to one flat id array, the model's own pieces and special ids,
decoding, and where whole words start.
"""

from __future__ import annotations

import abc

import numpy as np

ROLES = ("pad", "eos", "bos", "unk")


class TokenizerError(ValueError):
    """A tokenizer file that cannot be used, said in one line."""


class Tokenizer(abc.ABC):
    """A loaded tokenizer. `kind` is how the manifest names it."""

    kind: str

    @property
    @abc.abstractmethod
    def model_size(self) -> int:
        """Ids the tokenizer itself defines (0 .. model_size - 1)."""

    @abc.abstractmethod
    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every text's ids concatenated (int32), and how many each text has (int64)."""

    @abc.abstractmethod
    def encode_words(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `encode_flat`, plus a bool per token: True where a whole word starts."""

    @abc.abstractmethod
    def pieces(self) -> list[str]:
        """The piece string of every id below `model_size`."""

    @abc.abstractmethod
    def piece_to_id(self, piece: str) -> int | None:
        """The id of a piece the tokenizer defines, None if it does not."""

    @abc.abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of ordinary ids, as the library decodes them."""

    @abc.abstractmethod
    def own_roles(self) -> dict[str, int]:
        """The special roles (`ROLES`) the model itself assigns, by role."""

    @abc.abstractmethod
    def non_ordinary(self) -> np.ndarray:
        """bool [model_size]: ids a masker must never draw (control, unknown, byte fallback, special)."""

    @abc.abstractmethod
    def starts_word(self) -> np.ndarray:
        """bool [model_size]: True for an id that begins a word wherever it appears (the manifest's bitmap)."""

    @property
    def word_starts_need_encoding(self) -> bool:
        """True when whole words come from the encoding (`encode_words`), not from the ids alone."""
        return False
