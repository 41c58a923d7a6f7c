"""Causal LM: documents + eos (and with `add_bos` a leading bos) packed into fixed-length rows (SPEC §2 clm).

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
from transforms.objectives.base import Examples, Objective, option, require
from transforms.vocab import Vocab

PACKING_MODES = ("concat", "best_fit")
DEFAULT_SEQ_LEN = 1024


def with_eos(docs: DocBatch, eos: int, bos: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The token stream with `eos` after each document (and `bos` before it, if given), and its document offsets."""
    offsets = docs.doc_token_offsets()
    lead = 0 if bos is None else 1
    lengths = np.diff(offsets) + 1 + lead
    stream_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    stream = np.empty(int(stream_offsets[-1]), dtype=np.int32)
    is_added = np.zeros(stream.shape[0], dtype=bool)
    is_added[stream_offsets[1:] - 1] = True
    stream[stream_offsets[1:] - 1] = eos
    if lead:
        is_added[stream_offsets[:-1]] = True
        stream[stream_offsets[:-1]] = bos
    stream[~is_added] = docs.tokens
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

    def __init__(self, vocab: Vocab, seq_len: int = DEFAULT_SEQ_LEN, packing: str = "concat", add_bos: bool = False):
        super().__init__(vocab)
        require(seq_len >= 2, f"--seq-len must be at least 2 for clm, got {seq_len}")
        require(packing in PACKING_MODES, f"--packing must be one of {', '.join(PACKING_MODES)}, got {packing!r}")
        require(not add_bos or vocab.bos is not None, "--add-bos: the tokenizer defines no bos token; name one with --bos-token, or drop --add-bos")
        self.seq_len = seq_len
        self.packing = packing
        self.add_bos = bool(add_bos)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "CausalLM":
        return cls(vocab, seq_len=option(options, "seq_len", DEFAULT_SEQ_LEN), packing=option(options, "packing", "concat"), add_bos=option(options, "add_bos", False))

    @property
    def schema(self) -> Schema:
        L = self.seq_len
        return Schema(
            self.name,
            (Feature("input_ids", L, counts_tokens=True), Feature("segment_ids", L), Feature("positions", L)),
        )

    def params(self) -> dict[str, Any]:
        return {"seq_len": self.seq_len, "packing": self.packing, **({"add_bos": True} if self.add_bos else {})}

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        stream, offsets = with_eos(docs, self.vocab.eos, self.vocab.bos if self.add_bos else None)
        L = self.seq_len
        if self.packing == "concat":
            # Rows are the stream cut every L tokens; pieces end at row and document boundaries.
            starts = np.union1d(offsets[:-1], np.arange(0, stream.shape[0], L, dtype=np.int64))
            return self._materialize(stream, np.diff(np.append(starts, stream.shape[0])), starts // L)
        doc_lengths = np.diff(offsets)
        pieces_per_doc = (doc_lengths + L - 1) // L
        piece_doc = np.repeat(np.arange(doc_lengths.shape[0]), pieces_per_doc)
        piece_rank = np.arange(piece_doc.shape[0]) - np.repeat(np.cumsum(pieces_per_doc) - pieces_per_doc, pieces_per_doc)
        starts = offsets[piece_doc] + piece_rank * L
        ends = np.minimum(starts + L, offsets[piece_doc + 1])
        row = best_fit_decreasing(ends - starts, L)
        order = np.lexsort((np.arange(row.shape[0]), row))
        starts, ends, row = starts[order], ends[order], row[order]
        return self._materialize(stream[gather_ranges(starts, ends)], ends - starts, row)

    def _materialize(self, tokens: np.ndarray, piece_lengths: np.ndarray, piece_row: np.ndarray) -> Examples:
        """Rows from pieces laid left to right: `tokens` holds the pieces in row order, row by row."""
        L = self.seq_len
        num_rows = int(piece_row[-1]) + 1 if piece_row.size else 0
        row_length = np.bincount(piece_row, weights=piece_lengths, minlength=num_rows).astype(np.int64)
        first_in_row = np.r_[True, piece_row[1:] != piece_row[:-1]] if piece_row.size else np.zeros(0, bool)
        piece_index = np.arange(piece_row.shape[0])
        segment = piece_index - np.maximum.accumulate(np.where(first_in_row, piece_index, 0)) + 1
        piece_start = np.cumsum(piece_lengths) - piece_lengths
        real = np.arange(L) < row_length[:, None]
        input_ids = np.full((num_rows, L), self.vocab.pad, dtype=np.int32)
        segment_ids = np.zeros((num_rows, L), dtype=np.int32)
        positions = np.zeros((num_rows, L), dtype=np.int32)
        input_ids[real] = tokens
        segment_ids[real] = np.repeat(segment.astype(np.int32), piece_lengths)
        positions[real] = np.arange(tokens.shape[0], dtype=np.int32) - np.repeat(piece_start.astype(np.int32), piece_lengths)
        return Examples(
            {"input_ids": input_ids, "segment_ids": segment_ids, "positions": positions},
            {"padding_tokens": num_rows * L - int(tokens.shape[0]), "rows": num_rows},
        )
