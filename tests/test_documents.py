"""DocBatch: the canonical document order and the compact form it crosses the shuffle in."""

from __future__ import annotations

import pickle

import numpy as np

from transforms.documents import DocBatch, gather_ranges
from transforms.transit import HeldByKey, Packed


def random_docs(rng, n, keys):
    docs = [[rng.integers(0, 70000, size=rng.integers(1, 6)).tolist() for _ in range(rng.integers(1, 4))] for _ in range(n)]
    return DocBatch.from_token_lists(docs, key_hash=keys)


def as_lists(batch):
    return [[s.tolist() for s in batch.doc_sentences(d)] for d in range(batch.num_docs)], batch.key_hash.tolist()


def test_sorted_order_does_not_depend_on_arrival_order_even_with_repeated_keys():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 5, size=40).astype(np.uint64)  # many documents share a key
    batch = random_docs(rng, 40, keys)
    expected = as_lists(batch.take(batch.canonical_order()))
    for _ in range(5):
        shuffled = batch.take(rng.permutation(40))
        parts = [shuffled.take(np.arange(0, 13)), shuffled.take(np.arange(13, 40))]
        joined = DocBatch.concat(parts[::-1])
        assert as_lists(joined.take(joined.canonical_order())) == expected
    assert expected[1] == sorted(expected[1])


def test_a_packed_batch_is_small_and_unpacks_exactly():
    rng = np.random.default_rng(1)
    batch = random_docs(rng, 100, rng.integers(0, 2**63, size=100).astype(np.uint64))
    small = DocBatch.from_token_lists([[[1, 2, 3]]] * 1000)
    raw = sum(a.nbytes for a in small.to_arrays().values())
    assert len(pickle.dumps(Packed(small))) < raw / 4
    back = pickle.loads(pickle.dumps(Packed(batch))).unpack()
    assert back.tokens.dtype == np.int32 and back.sentence_offsets.dtype == np.int64
    assert as_lists(back) == as_lists(batch)


def test_examples_travel_packed_and_unpack_exactly():
    from transforms.examples import KeyedExamples

    rng = np.random.default_rng(2)
    ids = np.zeros((200, 512), dtype=np.int32)
    ids[:, :80] = rng.integers(0, 32000, size=(200, 80))  # mostly padding, as short NSP pairs are
    weights = (rng.random((200, 20)) < 0.5).astype(np.float32)
    examples = KeyedExamples(np.arange(200, dtype=np.uint64), {"input_ids": ids, "masked_lm_weights": weights})
    packed = Packed(examples)
    assert len(packed) < ids.nbytes / 4
    back = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(packed)))).unpack()
    assert back.features["input_ids"].dtype == np.int32 and np.array_equal(back.features["input_ids"], ids)
    assert np.array_equal(back.features["masked_lm_weights"], weights) and np.array_equal(back.keys, examples.keys)


def test_held_parts_leave_merged_per_key_once_the_limit_is_reached_and_lose_nothing():
    rng = np.random.default_rng(3)
    parts = [(int(rng.integers(0, 4)), random_docs(rng, 5, rng.integers(0, 2**63, size=5).astype(np.uint64))) for _ in range(30)]
    limit = sum(p.nbytes for _, p in parts[:10])
    held = HeldByKey(DocBatch.concat, limit)
    sent = []
    for i, (key, part) in enumerate(parts):
        out = list(held.add(key, part))
        assert not out or sum(p.nbytes for _, p in parts[: i + 1]) - sum(p.nbytes for _, p in sent) >= limit
        sent += out
    assert sent, "the limit was reached, so something left before the end"
    sent += list(held.drain())
    assert not list(held.drain())
    for key in {k for k, _ in parts}:
        merged = DocBatch.concat(p for k, p in sent if k == key)
        expected = DocBatch.concat(p for k, p in parts if k == key)
        assert as_lists(merged) == as_lists(expected)
    assert len(sent) < len(parts) / 2


def test_gather_ranges():
    assert gather_ranges(np.array([5, 0, 9]), np.array([7, 0, 12])).tolist() == [5, 6, 9, 10, 11]
