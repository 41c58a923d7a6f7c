"""Causal LM: documents + eos packed into fixed-length rows (SPEC §2 clm).

Feature names follow seqio's packing: `segment_ids` number the documents of a
row from 1 (0 on padding) and `positions` count from 0 inside each document's
part of the row. A document continued from the previous row starts again at
position 0, as seqio does when it splits a long document, so positions never
reach the row length.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from schemas import Feature, Schema
from transforms.documents import DocBatch, gather_ranges
from transforms.objectives.base import Examples, Objective, require
from transforms.vocab import Vocab

PACKING_MODES = ("concat", "best_fit")
DEFAULT_SEQ_LEN = 1024


def with_eos(docs: DocBatch, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """The token stream with `eos` after each document, and its document offsets."""
    offsets = docs.doc_token_offsets()
    lengths = np.diff(offsets) + 1
    stream_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stream = np.empty(int(stream_offsets[-1]), dtype=np.int32)
    is_eos = np.zeros(stream.shape[0], dtype=bool)
    is_eos[stream_offsets[1:] - 1] = True
    stream[is_eos] = eos
    stream[~is_eos] = docs.tokens
    return stream, stream_offsets


def best_fit_decreasing(sizes: np.ndarray, capacity: int) -> np.ndarray:
    """Bin of each item under best-fit-decreasing; items never split.

    Items are taken largest first (ties in input order); each goes into the
    open bin with the least room that still holds it, else a new bin. Bins
    are numbered in order of creation. The search over room sizes is a numpy
    scan, so the cost per item is one small vector operation.
    """
    order = np.argsort(-sizes, kind="stable")
    bin_of = np.empty(sizes.shape[0], dtype=np.int64)
    bins_with_room: list[list[int]] = [[] for _ in range(capacity + 1)]
    has_room = np.zeros(capacity + 1, dtype=bool)
    num_bins = 0
    for item in order.tolist():
        size = int(sizes[item])
        fits = np.flatnonzero(has_room[size:])
        if fits.size:
            room = size + int(fits[0])
            b = bins_with_room[room].pop()
            if not bins_with_room[room]:
                has_room[room] = False
        else:
            room, b = capacity, num_bins
            num_bins += 1
        bin_of[item] = b
        left = room - size
        if left:
            bins_with_room[left].append(b)
            has_room[left] = True
    return bin_of


class CausalLM(Objective):
    name = "clm"

    def __init__(self, vocab: Vocab, seq_len: int = DEFAULT_SEQ_LEN, packing: str = "concat"):
        super().__init__(vocab)
        require(seq_len >= 2, f"--seq-len must be at least 2 for clm, got {seq_len}")
        require(packing in PACKING_MODES, f"--packing must be one of {', '.join(PACKING_MODES)}, got {packing!r}")
        self.seq_len = seq_len
        self.packing = packing

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "CausalLM":
        return cls(vocab, seq_len=options.get("seq_len") or DEFAULT_SEQ_LEN, packing=options.get("packing", "concat"))

    @property
    def schema(self) -> Schema:
        L = self.seq_len
        return Schema(
            self.name,
            (Feature("input_ids", L, counts_tokens=True), Feature("segment_ids", L), Feature("positions", L)),
        )

    def params(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "packing": self.packing}

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        stream, offsets = with_eos(docs, self.vocab.eos)
        L = self.seq_len
        n = stream.shape[0]
        if self.packing == "concat":
            piece_starts = np.union1d(offsets[:-1], np.arange(0, n, L, dtype=np.int64))
            piece_ends = np.append(piece_starts[1:], n)
            row = piece_starts // L
            slot = piece_starts - row * L
        else:
            doc_lengths = np.diff(offsets)
            pieces_per_doc = (doc_lengths + L - 1) // L
            piece_doc = np.repeat(np.arange(doc_lengths.shape[0]), pieces_per_doc)
            piece_rank = np.arange(piece_doc.shape[0]) - np.repeat(np.cumsum(pieces_per_doc) - pieces_per_doc, pieces_per_doc)
            piece_starts = offsets[piece_doc] + piece_rank * L
            piece_ends = np.minimum(piece_starts + L, offsets[piece_doc + 1])
            row = best_fit_decreasing(piece_ends - piece_starts, L)
            order = np.lexsort((np.arange(row.shape[0]), row))
            piece_starts, piece_ends, row = piece_starts[order], piece_ends[order], row[order]
            lengths = piece_ends - piece_starts
            first_in_row = np.r_[True, row[1:] != row[:-1]] if row.size else np.zeros(0, bool)
            row_base = np.cumsum(lengths) - lengths
            slot = row_base - np.maximum.accumulate(np.where(first_in_row, row_base, 0))
        return self._materialize(stream, piece_starts, piece_ends, row, slot)

    def _materialize(self, stream, piece_starts, piece_ends, row, slot) -> Examples:
        """Lay pieces (stream[start:end] at row, slot) into the output rows."""
        L = self.seq_len
        num_rows = int(row.max()) + 1 if row.size else 0
        lengths = piece_ends - piece_starts
        first_in_row = np.r_[True, row[1:] != row[:-1]] if row.size else np.zeros(0, bool)
        piece_index = np.arange(row.shape[0])
        segment = piece_index - np.maximum.accumulate(np.where(first_in_row, piece_index, 0)) + 1
        src = gather_ranges(piece_starts, piece_ends)
        dst = gather_ranges(row * L + slot, row * L + slot + lengths)
        input_ids = np.full(num_rows * L, self.vocab.pad, dtype=np.int32)
        segment_ids = np.zeros(num_rows * L, dtype=np.int32)
        positions = np.zeros(num_rows * L, dtype=np.int32)
        input_ids[dst] = stream[src]
        segment_ids[dst] = np.repeat(segment, lengths)
        positions[dst] = src - np.repeat(piece_starts, lengths)
        return Examples(
            {
                "input_ids": input_ids.reshape(num_rows, L),
                "segment_ids": segment_ids.reshape(num_rows, L),
                "positions": positions.reshape(num_rows, L),
            },
            {"padding_tokens": num_rows * L - int(src.shape[0]), "rows": num_rows},
        )
