"""Special-token ids for a tokenizer (SPEC §1).

Every special token an objective may need is taken from the tokenizer when it
defines it (its own pad/eos/bos/unk, a token a role file or flag names, or a
piece spelled `[CLS]`, `<extra_id_3>` ...), else appended after its pieces: first the missing
sentinels among the first 100 (`T5_EXTRA_IDS`) in T5's order (the highest id
is `<extra_id_0>`), then the other missing tokens (pad and eos included) in the
order of `APPENDED_ROLES`, then, only when more than 100 sentinels are asked for (UL2's
default table needs 127), the missing `<extra_id_100>`, `<extra_id_101>` …
ascending. What is appended before the sentinels beyond the 100th does not
depend on the objective, so one tokenizer gives every objective built from it
the same id for every token they share: an objective that needs more sentinels
only adds ids after the others.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any, Mapping

import numpy as np

from transforms.tokenizer.base import TokenizerError
from transforms.tokenizer.sentencepiece_model import WORD_START, SentencePieceTokenizer

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
NLU, NLG, S2S = "[NLU]", "[NLG]", "[S2S]"
APPENDED_ORDER = (CLS, SEP, MASK, NLU, NLG, S2S)
NAMED_PIECES = {"cls": CLS, "sep": SEP, "mask": MASK, "nlu": NLU, "nlg": NLG, "s2s": S2S}
APPENDED_ROLES = ("pad", "eos", "cls", "sep", "mask", "nlu", "nlg", "s2s")  # the missing ones, in this order, after the first 100 sentinels
MODE_TOKENS = (NLU, NLG, S2S)
T5_EXTRA_IDS = 100
DEFAULT_EXTRA_IDS = T5_EXTRA_IDS


def sentinel_piece(k: int) -> str:
    return f"<extra_id_{k}>"


@dataclasses.dataclass(frozen=True, eq=False)
class Vocab:
    """Resolved special ids, the final vocab size and the ordinary ids.

    `ordinary_ids` are the ids a masker may draw as random replacements:
    normal pieces only (no control, unknown, unused, byte or special id).
    `starts_word[i]` is True when id i begins a whole word (its piece starts
    with U+2581, or it is not an ordinary piece), for whole-word masking.
    """

    model_size: int
    size: int
    pad: int
    eos: int
    unk: int | None
    specials: Mapping[str, int]
    sentinels: tuple[int, ...]
    ordinary_ids: np.ndarray
    starts_word: np.ndarray
    bos: int | None = None

    @property
    def cls(self) -> int:
        return self.specials[CLS]

    @property
    def sep(self) -> int:
        return self.specials[SEP]

    @property
    def mask(self) -> int:
        return self.specials[MASK]

    def mode_token(self, name: str) -> int:
        return self.specials[name]

    def special_ids(self) -> dict[str, Any]:
        """What the manifest records."""
        return {
            "pad": self.pad,
            "eos": self.eos,
            **({"bos": self.bos} if self.bos is not None else {}),
            "unk": self.unk,
            **dict(self.specials),
            "extra_ids": list(self.sentinels),
        }

    def manifest_entry(self) -> dict[str, Any]:
        ordinary = np.zeros(self.size, dtype=bool)
        ordinary[self.ordinary_ids] = True
        return {
            "model_size": self.model_size,
            "vocab_size": self.size,
            "special_ids": self.special_ids(),
            "non_ordinary_ids": np.flatnonzero(~ordinary[: self.model_size]).tolist(),
            "word_start_bitmap_base64": base64.b64encode(np.packbits(self.starts_word).tobytes()).decode("ascii"),
        }

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> "Vocab":
        """Rebuild from `manifest["tokenizer"]`, so a trainer can mask on the fly without the model."""
        ids = dict(entry["special_ids"])
        ordinary = np.ones(entry["model_size"], dtype=bool)
        ordinary[np.asarray(entry["non_ordinary_ids"], dtype=np.int64)] = False
        return cls(
            model_size=entry["model_size"],
            size=entry["vocab_size"],
            pad=ids.pop("pad"),
            eos=ids.pop("eos"),
            unk=ids.pop("unk"),
            bos=ids.pop("bos", None),
            sentinels=tuple(ids.pop("extra_ids")),
            specials=ids,
            ordinary_ids=np.flatnonzero(ordinary).astype(np.int32),
            starts_word=np.unpackbits(
                np.frombuffer(base64.b64decode(entry["word_start_bitmap_base64"]), dtype=np.uint8), count=entry["vocab_size"]
            ).astype(bool),
        )

    @classmethod
    def from_model_proto(cls, model_proto: bytes, extra_ids: int = DEFAULT_EXTRA_IDS) -> "Vocab":
        return cls.from_tokenizer(SentencePieceTokenizer.from_bytes(model_proto), extra_ids)

    @classmethod
    def from_processor(cls, sp, extra_ids: int = DEFAULT_EXTRA_IDS) -> "Vocab":
        return cls.from_tokenizer(SentencePieceTokenizer(sp), extra_ids)

    @classmethod
    def from_tokenizer(cls, tokenizer, extra_ids: int = DEFAULT_EXTRA_IDS, named: Mapping[str, tuple[str, str]] | None = None) -> "Vocab":
        """Resolve every role: a token `named` (role -> (token, who named it)), else the model's own, else appended (SPEC §1).

        A named token the tokenizer does not define is a `TokenizerError`:
        naming a token means the user expects the model's own id.
        """
        model_size = tokenizer.model_size
        chosen: dict[str, int] = dict(tokenizer.own_roles())
        for role, (token, source) in (named or {}).items():
            i = tokenizer.piece_to_id(token)
            if i is None:
                raise TokenizerError(f"{source} names {token!r} as the {role} token, but the tokenizer has no such token")
            chosen[role] = i
        defined = tokenizer.piece_to_id
        for role, piece in NAMED_PIECES.items():
            if role not in chosen and (i := defined(piece)) is not None:
                chosen[role] = i

        next_id = model_size
        sentinel_ids = [defined(sentinel_piece(k)) for k in range(extra_ids)]
        missing = [k for k, i in enumerate(sentinel_ids[:T5_EXTRA_IDS]) if i is None]
        for rank, k in enumerate(missing):
            sentinel_ids[k] = next_id + len(missing) - 1 - rank
        next_id += len(missing)
        for role in APPENDED_ROLES:
            if role not in chosen:
                chosen[role], next_id = next_id, next_id + 1
        for k in range(T5_EXTRA_IDS, extra_ids):
            if sentinel_ids[k] is None:
                sentinel_ids[k], next_id = next_id, next_id + 1

        specials = {NAMED_PIECES[role]: chosen[role] for role in APPENDED_ROLES if role in NAMED_PIECES}
        pad, eos, unk, bos = chosen["pad"], chosen["eos"], chosen.get("unk"), chosen.get("bos")
        special_set = set(sentinel_ids) | set(chosen.values())
        ordinary = ~tokenizer.non_ordinary()
        ordinary[[i for i in special_set if i < model_size]] = False
        starts_word = np.ones(next_id, dtype=bool)
        starts_word[:model_size] = ~ordinary | tokenizer.starts_word()
        return cls(
            model_size=model_size,
            size=next_id,
            pad=pad,
            eos=eos,
            unk=unk,
            specials=specials,
            sentinels=tuple(sentinel_ids),
            ordinary_ids=np.flatnonzero(ordinary).astype(np.int32),
            starts_word=starts_word,
            bos=bos,
        )
