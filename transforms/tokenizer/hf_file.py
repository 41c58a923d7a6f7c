"""A Hugging Face `tokenizers` file (`tokenizer.json`) behind the `Tokenizer` interface.

Roles the file itself cannot say (which added token is eos, pad, bos) come
from `tokenizer_config.json` / `special_tokens_map.json` beside it (as
`transformers` saves them) or from flags; the model's own `unk_token` is its
unk. Whole words are the tokens of one pre-tokenizer word (`Encoding.word_ids`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Mapping

import numpy as np

from transforms.tokenizer.base import Tokenizer, TokenizerError

CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
ROLE_KEYS = {"pad": "pad_token", "eos": "eos_token", "bos": "bos_token", "unk": "unk_token", "cls": "cls_token", "sep": "sep_token", "mask": "mask_token"}
_BYTE_LEVEL_SPACE, _METASPACE = "\u0120", "\u2581"


def is_tokenizers_json(data: bytes) -> bool:
    """True for the JSON a `tokenizers.Tokenizer` saves: an object with a `model` that has a `type` or a `vocab`."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return isinstance(model, dict) and ("type" in model or "vocab" in model)


def roles_from_configs(configs: Mapping[str, bytes]) -> dict[str, tuple[str, str]]:
    """Role -> (token content, file naming it) from `tokenizer_config.json` and `special_tokens_map.json` (the map wins where both name one)."""
    named: dict[str, tuple[str, str]] = {}
    for name in CONFIG_FILES:
        if name not in configs:
            continue
        try:
            entries = json.loads(configs[name])
        except ValueError as e:
            raise TokenizerError(f"{name} beside the tokenizer is not JSON: {e}") from None
        for role, key in ROLE_KEYS.items():
            value = entries.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                named[role] = (value, name)
    return named


class HFTokenizer(Tokenizer):
    kind = "tokenizers"

    def __init__(self, data: bytes):
        from tokenizers import Tokenizer as RustTokenizer

        text = data.decode("utf-8")
        try:
            self.tk = RustTokenizer.from_str(text)
        except Exception as e:
            raise TokenizerError(f"not a usable Hugging Face tokenizer.json: {(str(e).strip().splitlines() or [''])[0]}") from None
        spec: dict[str, Any] = json.loads(text)
        model = spec.get("model") or {}
        self._model_type = model.get("type")
        self._unk_token = model.get("unk_token")
        self._continuing_prefix = model.get("continuing_subword_prefix") or ("##" if self._model_type == "WordPiece" else None)
        self._special_added = [t["id"] for t in spec.get("added_tokens") or [] if t.get("special")]
        self._pre_tokenizers = _pre_tokenizer_types(spec.get("pre_tokenizer"))
        self._size = max(self.tk.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    @property
    def model_size(self) -> int:
        return self._size

    def encode_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        encodings = self.tk.encode_batch_fast(texts, add_special_tokens=False)
        lists = [e.ids for e in encodings]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum()))
        return flat.astype(np.int32), lengths

    def encode_words(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A token starts a word when its pre-tokenizer word differs from the previous token's (a token of no word starts one)."""
        if not texts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, bool)
        encodings = self.tk.encode_batch(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        total = int(lengths.sum())
        flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=total).astype(np.int32)
        words = np.fromiter((-1 if w is None else w for e in encodings for w in e.word_ids), dtype=np.int64, count=total)
        starts = np.ones(total, dtype=bool)
        starts[1:] = (words[1:] != words[:-1]) | (words[1:] < 0)
        starts[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
        return flat, lengths, starts

    def pieces(self) -> list[str]:
        return [self.tk.id_to_token(i) or "" for i in range(self._size)]

    def piece_to_id(self, piece: str) -> int | None:
        return self.tk.token_to_id(piece)

    def decode(self, ids: list[int]) -> str:
        return self.tk.decode(ids, skip_special_tokens=False)

    def own_roles(self) -> dict[str, int]:
        unk = self.tk.token_to_id(self._unk_token) if self._unk_token else None
        return {} if unk is None else {"unk": unk}

    def non_ordinary(self) -> np.ndarray:
        out = np.zeros(self._size, dtype=bool)
        out[self._special_added] = True
        out[list(self.own_roles().values())] = True
        return out

    def starts_word(self) -> np.ndarray:
        """WordPiece: an id without the continuation prefix; byte-level BPE: an id starting with `Ġ`; Metaspace: with `▁`."""
        pieces = self.pieces()
        if self._continuing_prefix and self._model_type == "WordPiece":
            return np.array([not p.startswith(self._continuing_prefix) for p in pieces], dtype=bool)
        marker = _BYTE_LEVEL_SPACE if "ByteLevel" in self._pre_tokenizers else _METASPACE if "Metaspace" in self._pre_tokenizers else None
        if marker is None:
            return np.ones(self._size, dtype=bool)
        return np.array([p.startswith(marker) for p in pieces], dtype=bool)

    @property
    def word_starts_need_encoding(self) -> bool:
        return True


def _pre_tokenizer_types(spec: Mapping[str, Any] | None) -> set[str]:
    if not spec:
        return set()
    found = {spec.get("type")}
    for inner in spec.get("pretokenizers") or []:
        found |= _pre_tokenizer_types(inner)
    return found
