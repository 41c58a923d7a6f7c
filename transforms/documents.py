"""Tokenized documents in bulk: the element that flows between pipeline stages.

A `DocBatch` holds many documents as a few flat numpy arrays (one token array,
offsets for sentences and documents), so Beam moves and pickles a handful of
large buffers instead of millions of small objects, and objectives slice them
with numpy. Every document has at least one sentence and one token.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Sequence

import numpy as np

from transforms.keys import bucket_of, parts_by_label


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Indices of the concatenated ranges [starts[i], ends[i]) without a Python loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(ends, dtype=np.int64) - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    out_starts = np.cumsum(lengths) - lengths
    return np.repeat(starts - out_starts, lengths) + np.arange(total, dtype=np.int64)


@dataclasses.dataclass
class DocBatch:
    """Documents in bulk.

    key_hash: uint64 [n] — hash of each document's key.
    tokens: int32 [T] — every sentence's token ids, concatenated.
    sentence_offsets: int64 [S + 1] — sentence s is tokens[o[s]:o[s+1]].
    doc_offsets: int64 [n + 1] — document d is sentences doc_offsets[d]:doc_offsets[d+1].
    word_starts: bool [T] or None — True where a whole word starts, kept only when
        whole words come from the encoding (a `tokenizers` file's word_ids).
    """

    key_hash: np.ndarray
    tokens: np.ndarray
    sentence_offsets: np.ndarray
    doc_offsets: np.ndarray
    word_starts: np.ndarray | None = None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, not copied (`dataclasses.asdict` would deep-copy them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "DocBatch":
        return cls(**arrays)

    @classmethod
    def empty(cls) -> "DocBatch":
        return cls(
            np.zeros(0, np.uint64),
            np.zeros(0, np.int32),
            np.zeros(1, np.int64),
            np.zeros(1, np.int64),
        )

    @classmethod
    def from_token_lists(
        cls,
        docs: Sequence[Sequence[Sequence[int]]],
        key_hash: Sequence[int] | None = None,
    ) -> "DocBatch":
        """Build from nested lists: docs[d][s] is sentence s of document d (for tests and small callers)."""
        sentences = [np.asarray(s, dtype=np.int32) for doc in docs for s in doc]
        sentence_lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        n = len(docs)
        return cls(
            np.asarray(key_hash if key_hash is not None else np.arange(n), dtype=np.uint64),
            np.concatenate(sentences) if sentences else np.zeros(0, np.int32),
            np.concatenate([[0], np.cumsum(sentence_lengths)]).astype(np.int64),
            np.concatenate([[0], np.cumsum([len(doc) for doc in docs])]).astype(np.int64),
        )

    @property
    def num_docs(self) -> int:
        return int(self.key_hash.shape[0])

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.to_arrays().values())

    def doc_token_offsets(self) -> np.ndarray:
        """int64 [n + 1]: document d is tokens[t[d]:t[d+1]]."""
        return self.sentence_offsets[self.doc_offsets]

    def doc_tokens(self, d: int) -> np.ndarray:
        t = self.sentence_offsets[self.doc_offsets[d : d + 2]]
        return self.tokens[t[0] : t[1]]

    def doc_sentences(self, d: int) -> list[np.ndarray]:
        o = self.sentence_offsets[self.doc_offsets[d] : self.doc_offsets[d + 1] + 1]
        return [self.tokens[o[i] : o[i + 1]] for i in range(len(o) - 1)]

    def take(self, indices: np.ndarray) -> "DocBatch":
        """The documents at `indices`, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        s_start, s_end = self.doc_offsets[indices], self.doc_offsets[indices + 1]
        sentence_index = gather_ranges(s_start, s_end)
        lengths = np.diff(self.sentence_offsets)[sentence_index]
        token_index = gather_ranges(self.sentence_offsets[sentence_index], self.sentence_offsets[sentence_index + 1])
        return DocBatch(
            self.key_hash[indices],
            self.tokens[token_index],
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.concatenate([[0], np.cumsum(s_end - s_start)]).astype(np.int64),
            None if self.word_starts is None else self.word_starts[token_index],
        )

    def slice(self, start: int, stop: int) -> "DocBatch":
        """Documents start to stop; their keys and tokens as views."""
        s0, s1 = int(self.doc_offsets[start]), int(self.doc_offsets[stop])
        t0, t1 = int(self.sentence_offsets[s0]), int(self.sentence_offsets[s1])
        return DocBatch(
            self.key_hash[start:stop],
            self.tokens[t0:t1],
            self.sentence_offsets[s0 : s1 + 1] - t0,
            self.doc_offsets[start : stop + 1] - s0,
            None if self.word_starts is None else self.word_starts[t0:t1],
        )

    def canonical_order(self) -> np.ndarray:
        """Indices of the documents in key order: the order every objective sees.

        Documents sharing a key (rare: a repeated id, or repeated text without
        an id) are ordered by their tokens, then their sentence lengths;
        documents equal in all three are identical, so their order cannot
        matter.
        """
        order = np.argsort(self.key_hash, kind="stable")
        keys = self.key_hash[order]
        tied = np.flatnonzero(keys[1:] == keys[:-1])
        if tied.size:
            first_of_run = tied[np.r_[True, tied[1:] != tied[:-1] + 1]]
            for start in first_of_run.tolist():
                end = start + 1
                while end < keys.size and keys[end] == keys[start]:
                    end += 1
                run = order[start:end].tolist()
                order[start:end] = sorted(run, key=self._content_order)
        return order

    def _content_order(self, d: int) -> tuple[bytes, bytes]:
        o = self.sentence_offsets[self.doc_offsets[d] : self.doc_offsets[d + 1] + 1]
        return self.tokens[o[0] : o[-1]].tobytes(), np.diff(o).tobytes()

    @staticmethod
    def concat(batches: Iterable["DocBatch"]) -> "DocBatch":
        batches = [b for b in batches if b.num_docs]
        if not batches:
            return DocBatch.empty()
        sentence_base = np.cumsum([0] + [b.num_tokens for b in batches[:-1]])
        doc_base = np.cumsum([0] + [len(b.sentence_offsets) - 1 for b in batches[:-1]])
        return DocBatch(
            np.concatenate([b.key_hash for b in batches]),
            np.concatenate([b.tokens for b in batches]),
            np.concatenate([[0]] + [b.sentence_offsets[1:] + base for b, base in zip(batches, sentence_base)]).astype(np.int64),
            np.concatenate([[0]] + [b.doc_offsets[1:] + base for b, base in zip(batches, doc_base)]).astype(np.int64),
            None if batches[0].word_starts is None else np.concatenate([b.word_starts for b in batches]),
        )


def route(batch: DocBatch, seed: int, num_buckets: int, buckets_per_group: int = 1) -> Iterator[tuple[int, DocBatch]]:
    """Split a batch by hash bucket, or by group of `buckets_per_group` consecutive buckets (both splits together; the objective step separates them)."""
    if batch.num_docs:
        yield from parts_by_label(bucket_of(batch.key_hash, seed, num_buckets) // buckets_per_group, batch)
