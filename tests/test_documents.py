"""DocBatch: the canonical document order, and the transit files batches cross a shuffle in."""

from __future__ import annotations

import pickle

import numpy as np

from transforms.documents import DocBatch, gather_ranges
from transforms.keys import grouped_order
from transforms.transit import TRANSIT_PREFIX, HeldByKey, store


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


def test_stored_batches_share_one_small_file_and_unpack_exactly(tmp_path):
    rng = np.random.default_rng(1)
    batch = random_docs(rng, 100, rng.integers(0, 2**63, size=100).astype(np.uint64))
    small = DocBatch.from_token_lists([[[1, 2, 3]]] * 1000)
    raw = sum(a.nbytes for a in small.to_arrays().values())
    stored = store(str(tmp_path), [(7, small), (3, batch), (7, batch)])
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith(TRANSIT_PREFIX)
    assert files[0].stat().st_size == sum(s.nbytes for _, s in stored)
    assert [k for k, _ in stored] == [7, 3, 7] and stored[0][1].nbytes < raw / 4
    assert len(pickle.dumps(stored[1][1])) < 1000  # only the reference crosses the shuffle
    back = [pickle.loads(pickle.dumps(s)).unpack() for _, s in stored]
    assert back[1].tokens.dtype == np.int32 and back[1].sentence_offsets.dtype == np.int64
    assert [as_lists(b) for b in back] == [as_lists(small), as_lists(batch), as_lists(batch)]
    assert store(str(tmp_path), []) == [] and len(list(tmp_path.iterdir())) == 1


def test_examples_travel_stored_and_unpack_exactly(tmp_path):
    from transforms.examples import KeyedExamples

    rng = np.random.default_rng(2)
    ids = np.zeros((200, 512), dtype=np.int32)
    ids[:, :80] = rng.integers(0, 32000, size=(200, 80))  # mostly padding, as short NSP pairs are
    weights = (rng.random((200, 20)) < 0.5).astype(np.float32)
    examples = KeyedExamples(np.arange(200, dtype=np.uint64), {"input_ids": ids, "masked_lm_weights": weights})
    [(_, stored)] = store(str(tmp_path), [(("train", 3), examples)])
    assert stored.nbytes < ids.nbytes / 4
    back = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(stored)))).unpack()
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


def test_grouping_by_label_gives_each_label_its_items_in_their_order():
    rng = np.random.default_rng(3)
    batch = random_docs(rng, 60, rng.integers(0, 2**63, size=60).astype(np.uint64))
    labels = rng.integers(0, 7, size=60)
    order, groups = grouped_order(labels)
    grouped = batch.take(order)
    assert [label for label, _, _ in groups] == sorted(set(labels.tolist()))
    for label, start, stop in groups:
        assert as_lists(grouped.slice(start, stop)) == as_lists(batch.take(np.flatnonzero(labels == label)))
    assert grouped_order(np.zeros(0, np.int64))[1] == []
