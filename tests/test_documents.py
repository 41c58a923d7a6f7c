"""DocBatch: the canonical document order and the compact form it crosses the shuffle in."""

from __future__ import annotations

import pickle

import numpy as np

from transforms.documents import DocBatch, gather_ranges


def random_docs(rng, n, keys):
    docs = [[rng.integers(0, 70000, size=rng.integers(1, 6)).tolist() for _ in range(rng.integers(1, 4))] for _ in range(n)]
    return DocBatch.from_token_lists(docs, key_hash=keys)


def as_lists(batch):
    return [[s.tolist() for s in batch.doc_sentences(d)] for d in range(batch.num_docs)], batch.key_hash.tolist()


def test_sorted_order_does_not_depend_on_arrival_order_even_with_repeated_keys():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 5, size=40).astype(np.uint64)  # many documents share a key
    batch = random_docs(rng, 40, keys)
    expected = as_lists(batch.sorted())
    for _ in range(5):
        shuffled = batch.take(rng.permutation(40))
        parts = [shuffled.take(np.arange(0, 13)), shuffled.take(np.arange(13, 40))]
        assert as_lists(DocBatch.concat(parts[::-1]).sorted()) == expected
    assert expected[1] == sorted(expected[1])


def test_pickled_batch_is_compact_and_restores_exactly():
    rng = np.random.default_rng(1)
    batch = random_docs(rng, 100, rng.integers(0, 2**63, size=100).astype(np.uint64))
    small = DocBatch.from_token_lists([[[1, 2, 3]]] * 1000)
    assert len(pickle.dumps(small)) < 1000 * 3 * 4  # token ids below 256 travel as bytes
    back = pickle.loads(pickle.dumps(batch))
    assert back.tokens.dtype == np.int32 and back.sentence_offsets.dtype == np.int64
    assert as_lists(back) == as_lists(batch)


def test_gather_ranges():
    assert gather_ranges(np.array([5, 0, 9]), np.array([7, 0, 12])).tolist() == [5, 6, 9, 10, 11]
