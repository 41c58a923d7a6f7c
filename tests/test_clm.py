"""The clm packer on edge cases: documents longer than a row, exactly a row, none at all."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.documents import DocBatch
from transforms.objectives.clm import CausalLM, best_fit_decreasing

L = 8


def docs_of(lengths, start=100):
    rng = np.random.default_rng(len(lengths))
    return DocBatch.from_token_lists([[rng.integers(start, start + 1000, size=n).tolist()] for n in lengths])


def pieces(features):
    """(tokens, positions) of every segment of every row."""
    out = []
    for ids, seg, pos in zip(features["input_ids"], features["segment_ids"], features["positions"]):
        for s in range(1, seg.max() + 1):
            out.append((ids[seg == s].tolist(), pos[seg == s].tolist()))
    return out


@pytest.mark.parametrize("packing", ["concat", "best_fit"])
def test_every_token_lands_once_with_positions_counting_inside_pieces(vocab, packing):
    docs = docs_of([3, 7, 8, 20, 1, 15, 2])
    examples = CausalLM(vocab, seq_len=L, packing=packing).build(docs, np.random.default_rng(0))
    f = examples.features
    assert all(a.shape[1] == L for a in f.values())
    got = pieces(f)
    assert all(pos == list(range(len(tokens))) for tokens, pos in got)
    stream = [t for d in range(docs.num_docs) for t in docs.doc_tokens(d).tolist() + [vocab.eos]]
    assert sorted(t for tokens, _ in got for t in tokens) == sorted(stream)
    assert examples.counters["padding_tokens"] == f["input_ids"].size - len(stream)
    if packing == "concat":
        assert f["input_ids"].reshape(-1)[: len(stream)].tolist() == stream
    else:
        whole = [d.tolist() + [vocab.eos] for d in map(docs.doc_tokens, range(docs.num_docs)) if d.size < L]
        assert all(doc in [tokens for tokens, _ in got] for doc in whole)


def test_best_fit_decreasing_fills_the_tightest_bin():
    sizes = np.array([5, 3, 4, 2, 6, 1, 3])
    bins = best_fit_decreasing(sizes, 8)
    load = np.bincount(bins, weights=sizes)
    assert load.tolist() == [8, 8, 8]  # 6+2, 5+3, 4+3+1: each item goes where it leaves the least room
    assert bins[4] == bins[3] and bins[0] == bins[1] and bins[2] == bins[6] == bins[5]


@pytest.mark.parametrize("packing", ["concat", "best_fit"])
def test_no_documents_make_no_rows(vocab, packing):
    examples = CausalLM(vocab, seq_len=L, packing=packing).build(DocBatch.empty(), np.random.default_rng(0))
    assert examples.features["input_ids"].shape == (0, L)
