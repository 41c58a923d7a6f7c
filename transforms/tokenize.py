"""Tokenize documents in batches and route them to their hash bucket.

One SentencePiece `encode` call per batch of documents: the tokenizer is the
one cost the pipeline cannot avoid, and batching keeps everything around it
small. The output is keyed by bucket group (`route`) so the next stage sees
every document of a bucket together, mixed across all input files.
"""

from __future__ import annotations

import itertools
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
_SHORT_TEXT_CHARS = 500  # below this average length, SentencePiece's lists beat its arrays (measured: sentences ~80 chars, documents ~3,500)


def encode_flat(sp, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's ids concatenated (int32), and how many each text has: one `encode` call.

    SentencePiece returns a numpy array or a list per text; an array costs
    more to make, a list more per id. So many short texts (sentences) come
    back as lists, and long ones (documents) as arrays.
    """
    if not texts:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    if sum(map(len, texts)) < _SHORT_TEXT_CHARS * len(texts):
        lists = sp.encode(texts, out_type=int, num_threads=1)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64, count=int(lengths.sum()))  # int64: 24 ns an id, int32: 40
        return flat.astype(np.int32), lengths
    arrays = sp.encode(texts, out_type="numpy", num_threads=1)
    lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
    return np.concatenate(arrays).astype(np.int32, copy=False), lengths


def tokenize_documents(
    encode: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
    docs: Sequence[Document],
    split_sentences: SentenceSplitter | None,
) -> tuple[DocBatch, list[int]]:
    """Encode `docs` in one call (`encode` as `encode_flat`); return the batch and the indices of docs with no tokens.

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
    tokens, lengths = encode(texts)
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
    )
    return batch, empty


class TokenizeDocuments(beam.DoFn):
    """`TextBatch` in, with the SentencePiece model as a side input; (bucket group, Stored DocBatch) out, held to a few large elements per group; documents without tokens dead-lettered.

    The model comes as a side input rather than inside the DoFn so that a
    pipeline with several tokenize steps carries it once in its job graph.
    """

    def __init__(self, split_sentences: SentenceSplitter | None, seed: int, num_buckets: int, buckets_per_group: int, transit_dir: str, progress_dir: str | None):
        self._split_sentences = split_sentences
        self._seed = seed
        self._num_buckets = num_buckets
        self._buckets_per_group = buckets_per_group
        self._transit_dir = transit_dir
        self._progress_dir = progress_dir

    def setup(self):
        self._sp = None
        self._progress = ProgressFile(self._progress_dir)

    def start_bundle(self):
        self._held = HeldByKey(DocBatch.concat)

    def process(self, element: TextBatch, model_proto: bytes):
        if self._sp is None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        docs = element.documents
        batch, empty = tokenize_documents(lambda texts: encode_flat(self._sp, texts), docs, self._split_sentences)
        for i in empty:
            doc = docs[i]
            yield beam.pvalue.TaggedOutput("dead", DeadLetter(doc.source, doc.offset, NO_TOKENS, doc.text.encode("utf-8")))
        if empty:
            yield from emit_counters({f"dropped/{NO_TOKENS}": len(empty)})
        self._progress.add(documents=len(docs), tokens=batch.num_tokens, text_bytes=sum(len(d.text) for d in docs))
        for group, docs in route(batch, self._seed, self._num_buckets, self._buckets_per_group):
            yield from store(self._transit_dir, self._held.add(group, docs))

    def finish_bundle(self):
        for key_and_stored in store(self._transit_dir, self._held.drain()):
            yield GlobalWindows.windowed_value(key_and_stored)

    def teardown(self):
        if getattr(self, "_progress", None):
            self._progress.flush()
