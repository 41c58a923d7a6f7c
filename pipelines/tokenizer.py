"""Train a SentencePiece model that reserves every special token of SPEC §1."""

from __future__ import annotations

import heapq
import io
import os
from typing import Iterable, Sequence

from transforms.keys import hash64
from transforms.read import DeadLetter, ReadRange, read_range
from transforms.storage import open_raw
from transforms.vocab import APPENDED_ORDER, DEFAULT_EXTRA_IDS, sentinel_piece


def train_sentencepiece(texts: Iterable[str], vocab_size: int, extra_ids: int = DEFAULT_EXTRA_IDS, threads: int | None = None) -> bytes:
    """A unigram model (T5-style ids: pad 0, eos 1, unk 2, no bos) as serialized bytes.

    `[CLS] [SEP] [MASK] [NLU] [NLG] [S2S]` and `<extra_id_0..N-1>` are control
    symbols: they get ids in the model but are never produced from text, so a
    literal "[MASK]" in a document stays ordinary text. Training reads an
    iterator and writes to memory, so the model holds no file paths and the
    same texts give the same bytes.
    """
    import sentencepiece as spm

    def lines():
        for text in texts:
            for line in text.split("\n"):
                if line.strip():
                    yield line

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines(),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        control_symbols=list(APPENDED_ORDER) + [sentinel_piece(k) for k in range(extra_ids)],
        max_sentence_length=1 << 16,
        num_threads=threads or os.cpu_count() or 1,
        minloglevel=2,
    )
    return model.getvalue()


def sample_texts(ranges: Sequence[ReadRange], spec, size: int) -> list[str]:
    """A deterministic sample of `size` documents: those with the smallest key hashes.

    Independent of file order and of how the input is split into files.
    """
    heap: list[tuple[int, str]] = []
    for rng in ranges:
        for item in read_range(rng, open_raw, spec):
            if isinstance(item, DeadLetter):
                continue
            entry = (-hash64(item.key.encode("utf-8")), item.text)
            if len(heap) < size:
                heapq.heappush(heap, entry)
            elif entry > heap[0]:
                heapq.heapreplace(heap, entry)
    return [text for _, text in sorted(heap, reverse=True)]
