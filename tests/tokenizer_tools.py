"""Small Hugging Face tokenizers trained in the test, offline: a byte-level BPE (GPT-2 / Llama 3 style) and a WordPiece (BERT style)."""

from __future__ import annotations

import json
import os
from typing import Iterable

BPE_SPECIALS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}
WORDPIECE_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}


def train_byte_level_bpe(directory, texts: Iterable[str], vocab_size: int = 800, config: bool = True) -> str:
    """`directory`/tokenizer.json (and tokenizer_config.json naming bos and eos, as Llama 3 ships them); returns the directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(BPE_SPECIALS.values()), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer)
    os.makedirs(directory, exist_ok=True)
    tk.save(os.path.join(directory, "tokenizer.json"))
    if config:
        with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
            json.dump(BPE_SPECIALS, f)
    return str(directory)


def train_wordpiece(directory, texts: Iterable[str], vocab_size: int = 800) -> str:
    """`directory`/tokenizer.json and special_tokens_map.json (BERT's roles); returns the directory."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tk = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(WORDPIECE_SPECIALS.values()), show_progress=False)
    tk.train_from_iterator(texts, trainer)
    os.makedirs(directory, exist_ok=True)
    tk.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "special_tokens_map.json"), "w") as f:
        json.dump(WORDPIECE_SPECIALS, f)
    return str(directory)
