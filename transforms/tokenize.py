"""Tokenize documents in batches and route them to their hash bucket.

One tokenizer call per batch of documents: the tokenizer is the
one cost the pipeline cannot avoid, and batching keeps everything around it
small. The output is keyed by bucket group (`route`) so the next stage sees
every document of a bucket together, mixed across all input files.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindows

from transforms.counters import emit_counters
from transforms.documents import DocBatch, route
from transforms.keys import hash64
from transforms.progress import ProgressFile
from transforms.read import NO_TOKENS, DeadLetter, Document, TextBatch
from transforms.transit import HeldByKey, store

SentenceSplitter = Callable[[str], list[str]]
Encode = Callable[[list[str]], tuple]  # texts -> (flat ids, lengths) or (flat ids, lengths, word starts): `Tokenizer.encode_flat` / `encode_words`


def tokenize_documents(
    encode: Encode,
    docs: Sequence[Document],
    split_sentences: SentenceSplitter | None,
) -> tuple[DocBatch, list[int]]:
    """Encode `docs` in one call (`encode` as `Tokenizer.encode_flat`, or `encode_words` to keep word starts); return the batch and the indices of docs with no tokens.

    Sentences come from the document (text format: its lines), else from
    `split_sentences`, else the whole text is one sentence. Sentences that
    encode to nothing are dropped; a document left with no tokens is reported.
    """
    texts: list[str] = []
    counts = np.empty(len(docs), dtype=np.int64)
    for i, doc in enumerate(docs):
        sentences = doc.sentences if doc.sentences is not None else (split_sentences(doc.text) if split_sentences else [doc.text])
        texts.extend(sentences)
        counts[i] = len(sentences)
    tokens, lengths, *word_starts = encode(texts)
    doc_of_sentence = np.repeat(np.arange(len(docs)), counts)
    keep = lengths > 0
    doc_tokens = np.bincount(doc_of_sentence, weights=lengths, minlength=len(docs))
    empty = np.flatnonzero(doc_tokens == 0).tolist()
    kept_per_doc = np.bincount(doc_of_sentence[keep], minlength=len(docs))
    good = np.flatnonzero(doc_tokens > 0)
    batch = DocBatch(
        key_hash=np.array([hash64(docs[i].key.encode("utf-8")) for i in good.tolist()], dtype=np.uint64),
        tokens=tokens,
        sentence_offsets=np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64),
        doc_offsets=np.concatenate([[0], np.cumsum(kept_per_doc[good])]).astype(np.int64),
        word_starts=word_starts[0] if word_starts else None,
    )
    return batch, empty


class TokenizeDocuments(beam.DoFn):
    """`TextBatch` in, with the tokenizer's (kind, bytes) as a side input; (bucket group, Stored DocBatch) out, held to a few large elements per group; documents without tokens dead-lettered.

    The model comes as a side input rather than inside the DoFn so that a
    pipeline with several tokenize steps carries it once in its job graph.
    """

    def __init__(self, split_sentences: SentenceSplitter | None, seed: int, num_buckets: int, buckets_per_group: int, transit_dir: str, progress_dir: str | None, whole_words: bool = False, threads: int = 1):
        self._split_sentences = split_sentences
        self._whole_words = whole_words
        self._threads = threads
        self._seed = seed
        self._num_buckets = num_buckets
        self._buckets_per_group = buckets_per_group
        self._transit_dir = transit_dir
        self._progress_dir = progress_dir

    def setup(self):
        self._encode = None
        self._progress = ProgressFile(self._progress_dir)

    def start_bundle(self):
        self._held = HeldByKey(DocBatch.concat)

    def process(self, element: TextBatch, tokenizer: tuple[str, bytes]):
        if self._encode is None:
            self._encode = self._load(*tokenizer)
        docs = element.documents
        batch, empty = tokenize_documents(self._encode, docs, self._split_sentences)
        for i in empty:
            doc = docs[i]
            yield beam.pvalue.TaggedOutput("dead", DeadLetter(doc.source, doc.offset, NO_TOKENS, doc.text.encode("utf-8")))
        if empty:
            yield from emit_counters({f"dropped/{NO_TOKENS}": len(empty)})
        self._progress.add(documents=len(docs), tokens=batch.num_tokens, text_bytes=sum(len(d.text) for d in docs))
        for group, docs in route(batch, self._seed, self._num_buckets, self._buckets_per_group):
            yield from store(self._transit_dir, self._held.add(group, docs))

    def _load(self, kind: str, data: bytes) -> Encode:
        """The encoder; a `tokenizers` file gets a Rust thread pool of `threads`, set before its first use in this process."""
        os.environ.setdefault("RAYON_NUM_THREADS", str(self._threads))
        from transforms.tokenizer import tokenizer_from_bytes

        tokenizer = tokenizer_from_bytes(kind, data)
        return tokenizer.encode_words if self._whole_words and tokenizer.word_starts_need_encoding else tokenizer.encode_flat

    def finish_bundle(self):
        for key_and_stored in store(self._transit_dir, self._held.drain()):
            yield GlobalWindows.windowed_value(key_and_stored)

    def teardown(self):
        if getattr(self, "_progress", None):
            self._progress.flush()
