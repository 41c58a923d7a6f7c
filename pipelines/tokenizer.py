"""Train a tokenizer (a SentencePiece model or a byte-level BPE tokenizer.json) that reserves every special token of SPEC §1."""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import io
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence

from transforms.keys import hash64
from transforms.read import DeadLetter, ReadRange, infer_format, open_for, parquet_row_groups, plan_ranges, read_range
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


BPE_PAD = "<pad>"
BPE_EOS = "<|endoftext|>"


def train_byte_level_bpe(texts: Sequence[str], vocab_size: int, extra_ids: int = DEFAULT_EXTRA_IDS) -> dict[str, bytes]:
    """A byte-level BPE (GPT-2 style) as `{"tokenizer.json": ..., "tokenizer_config.json": ...}`.

    The config names its pad and eos, so a build finds them by role; the
    other special tokens and the sentinels are added special tokens, never
    produced from text, as SentencePiece's control symbols are.
    """
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [BPE_PAD, BPE_EOS, *APPENDED_ORDER, *(sentinel_piece(k) for k in range(extra_ids))]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    config = {"pad_token": BPE_PAD, "eos_token": BPE_EOS}
    return {"tokenizer.json": tokenizer.to_str().encode("utf-8"), "tokenizer_config.json": json.dumps(config, indent=1).encode("utf-8")}


SAMPLE_RANGE_BYTES = 4 << 20
READ_THREADS = 8  # ranges read at once: reads and decompression leave the GIL
PROGRESS_EVERY_S = 2.0


def sample_ranges(files: Sequence[tuple[str, int]], input_format: str, read_bytes: int) -> list[ReadRange]:
    """The ranges a sample reads: all of them while the input fits `read_bytes`, else ranges picked by a hash of (path, start) up to it.

    Picking by hash spreads a bounded read over the whole input (not the first
    files), the same way on every run.
    """
    ranges = []
    for path, size in files:
        fmt, compression = infer_format(path, input_format)
        groups = parquet_row_groups(path) if fmt == "parquet" else None
        ranges += plan_ranges(path, size, fmt, compression, SAMPLE_RANGE_BYTES, groups)
    if sum(r.size for r in ranges) <= read_bytes:
        return ranges
    picked, total = [], 0
    for rng in sorted(ranges, key=lambda r: hash64(f"{r.path}:{r.start}".encode("utf-8"))):
        if total >= read_bytes:
            break
        picked.append(rng)
        total += rng.size
    return sorted(picked, key=lambda r: (r.path, r.start))


@dataclasses.dataclass
class SampleProgress:
    """What a sample has read so far, for a progress line."""

    total_bytes: int
    bytes_read: int = 0
    documents: int = 0

    def line(self) -> str:
        return f"  reading: {self.bytes_read / 1e6:.1f} of {self.total_bytes / 1e6:.1f} MB, {self.documents:,} documents"


def sample_texts(ranges: Sequence[ReadRange], spec, size: int, progress: SampleProgress | None = None, threads: int = READ_THREADS) -> list[str]:
    """A deterministic sample of `size` documents of `ranges`: those with the smallest key hashes.

    Independent of file order, of how the input is split into files and of
    the order the ranges are read in (several at a time).
    """
    heap: list[tuple[int, str]] = []
    lock = threading.Lock()
    progress = progress or SampleProgress(sum(r.size for r in ranges))

    def read(rng: ReadRange) -> None:
        for item in read_range(rng, open_for(rng), spec):
            if isinstance(item, DeadLetter):
                continue
            entry = (-hash64(item.key.encode("utf-8")), item.text)
            with lock:
                progress.documents += 1
                if len(heap) < size:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:
                    heapq.heapreplace(heap, entry)
        with lock:
            progress.bytes_read += rng.size

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, ranges))
    return [text for _, text in sorted(heap, reverse=True)]


@contextlib.contextmanager
def printing_every(line: Callable[[], str], stream=None, every: float = PROGRESS_EVERY_S) -> Iterator[None]:
    """Print `line()` every `every` seconds while the block runs, and once at its end."""
    stream = stream or sys.stdout
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every):
            print(line(), file=stream, flush=True)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    print(line(), file=stream, flush=True)


def piece_count(model_proto: bytes) -> int:
    """The pieces a trained model really has: with `hard_vocab_limit` off, fewer than asked when the sample holds no more."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model_proto).get_piece_size()


def token_count(tokenizer_json: bytes) -> int:
    """The tokens a trained BPE really has: fewer than asked when the sample holds no more merges."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer_json.decode("utf-8")).get_vocab_size(with_added_tokens=True)
