"""End to end: `tokenmill build --objective clm` on the real sample corpus, read back like trainers do."""

from __future__ import annotations

import collections
import hashlib
import os

import numpy as np
import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, assert_identical_shards, build, read_parquet, read_tf, read_with_tfrecord_package, read_with_torch_reader
from transforms.keys import bucket_of, hash64, is_validation

SEQ_LEN = 256


def expected_documents(sample_docs, ids, manifest, split):
    """The token ids of every document of a split, per bucket, in canonical order (key hash, then tokens)."""
    config = manifest["config"]
    key_hash = np.array([hash64(f"id:{d['id']}".encode()) for d in sample_docs], dtype=np.uint64)
    in_split = is_validation(key_hash, config["validation_fraction"]) == (split == "validation")
    buckets = bucket_of(key_hash, config["seed"], config["num_buckets"])
    out = collections.defaultdict(list)
    for i in sorted(range(len(ids)), key=lambda i: (int(key_hash[i]), np.asarray(ids[i], np.int32).tobytes())):
        if in_split[i]:
            out[int(buckets[i])].append(ids[i])
    return out


@pytest.fixture(scope="module")
def concat(tmp_path_factory):
    return build(tmp_path_factory.mktemp("concat"), "--seq-len", SEQ_LEN, "--num-shards", 4, "--validation-fraction", 0.05, "--num-buckets", 2)


@pytest.fixture(scope="module")
def best_fit(tmp_path_factory):
    return build(tmp_path_factory.mktemp("best_fit"), "--packing", "best_fit", "--seq-len", 512, "--num-shards", 4, "--validation-fraction", 0.3)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_concat_rows_are_the_document_stream_cut_into_rows(concat, sample_docs, sample_token_ids, sp, split):
    manifest, version_dir = concat
    rows = read_tf(version_dir, manifest, split)
    assert rows["input_ids"].shape[1] == SEQ_LEN and rows["input_ids"].dtype == np.int64
    eos, pad = sp.eos_id(), sp.pad_id()
    expected = []
    for docs in expected_documents(sample_docs, sample_token_ids, manifest, split).values():
        stream = np.concatenate([np.append(d, eos) for d in docs])
        padded = np.full(-(-stream.size // SEQ_LEN) * SEQ_LEN, pad)
        padded[: stream.size] = stream
        expected += [r.tobytes() for r in padded.reshape(-1, SEQ_LEN)]
    actual = [r.tobytes() for r in rows["input_ids"]]
    assert collections.Counter(actual) == collections.Counter(expected)
    assert manifest["totals"][split]["examples"] == len(expected)


def test_concat_segments_and_positions_follow_documents(concat, sp):
    manifest, version_dir = concat
    rows = read_tf(version_dir, manifest)
    ids, seg, pos = rows["input_ids"], rows["segment_ids"], rows["positions"]
    real = seg > 0
    assert np.array_equal(real, ids != sp.pad_id())
    for r in range(ids.shape[0]):
        s = seg[r][real[r]]
        assert s[0] == 1 and np.all(np.diff(s) >= 0) and np.all(np.diff(s) <= 1)
        # A new segment starts right after each eos, and positions restart there.
        ends = np.flatnonzero(ids[r][real[r]] == sp.eos_id())
        starts = np.flatnonzero(np.diff(s)) + 1
        assert np.array_equal(starts, ends[ends + 1 < s.size] + 1)
        expected_pos = np.arange(s.size) - np.concatenate([[0], starts])[s - 1]
        assert np.array_equal(pos[r][real[r]], expected_pos)
    assert np.all(pos[~real] == 0)


def test_best_fit_never_splits_a_short_document_and_pads_little(best_fit, sample_docs, sample_token_ids, sp):
    manifest, version_dir = best_fit
    rows = read_tf(version_dir, manifest)
    L, eos = 512, sp.eos_id()
    pieces = collections.Counter()
    for ids, seg in zip(rows["input_ids"], rows["segment_ids"]):
        for s in range(1, seg.max() + 1):
            pieces[ids[seg == s].tobytes()] += 1
    expected = collections.Counter()
    for docs in expected_documents(sample_docs, sample_token_ids, manifest, "train").values():
        for d in docs:
            stream = np.append(d, eos).astype(np.int64)
            for start in range(0, stream.size, L):
                expected[stream[start : start + L].tobytes()] += 1
    assert pieces == expected
    padding = manifest["totals"]["train"]["padding_fraction"]
    assert 0 < padding < 0.05
    assert padding == pytest.approx(1 - (rows["input_ids"] != sp.pad_id()).mean(), abs=1e-6)


def test_no_document_in_both_splits(best_fit, sample_docs, sample_token_ids):
    manifest, version_dir = best_fit

    def whole_documents(split):
        rows = read_tf(version_dir, manifest, split)
        docs = set()
        for ids, seg in zip(rows["input_ids"], rows["segment_ids"]):
            for s in range(1, seg.max() + 1):
                piece = ids[seg == s]
                if piece.size < 512:
                    docs.add(piece[:-1].tobytes())
        return docs

    train, validation = whole_documents("train"), whole_documents("validation")
    assert len(validation) > 0.2 * (len(train) + len(validation))
    texts_by_tokens = collections.defaultdict(set)
    for d, ids in zip(sample_docs, sample_token_ids):
        texts_by_tokens[np.asarray(ids, dtype=np.int64).tobytes()].add(d["id"])
    shared = train & validation
    # Only the same text under two different ids (two documents) may appear on both sides.
    assert all(len(texts_by_tokens[t]) > 1 for t in shared)


def test_parquet_and_tfrecord_hold_the_same_examples(concat):
    manifest, version_dir = concat
    tf_rows = read_tf(version_dir, manifest)
    pq_rows = read_parquet(version_dir)
    assert set(tf_rows) == set(pq_rows)
    for name in tf_rows:
        assert pq_rows[name].dtype == np.int32
        assert np.array_equal(tf_rows[name], pq_rows[name]), name


def test_tfrecord_package_and_the_torch_reader_read_the_same_examples(concat):
    manifest, version_dir = concat
    tf_rows = read_tf(version_dir, manifest)
    package_rows = read_with_tfrecord_package(version_dir, manifest)
    torch_rows = read_with_torch_reader(version_dir)
    for name in tf_rows:
        assert np.array_equal(tf_rows[name], package_rows[name]), name
        assert np.array_equal(tf_rows[name], torch_rows[name]), name


def test_manifest_accounts_for_every_record_and_file(concat, sample_docs):
    manifest, version_dir = concat
    c = manifest["counters"]
    assert c["records_read"] == len(sample_docs)
    assert c["records_read"] == c["documents_used"] + c["documents_dropped_total"]
    for shard in manifest["shards"]:
        with open(os.path.join(version_dir, shard["path"]), "rb") as f:
            data = f.read()
        assert len(data) == shard["bytes"] and hashlib.sha256(data).hexdigest() == shard["sha256"]
    assert len(manifest["shards"]) == 2 * (4 + 1)
    on_disk = {os.path.relpath(os.path.join(d, f), version_dir) for d, _, files in os.walk(version_dir) for f in files}
    assert on_disk == {"manifest.json"} | {s["path"] for s in manifest["shards"]} | {e["path"] for e in manifest["errors"]} | {f["path"] for f in manifest["tokenizer"]["files"]}
    assert manifest["tokenizer"]["special_ids"]["eos"] == 1
    assert manifest["objective"] == {"name": "clm", "params": {"seq_len": SEQ_LEN, "packing": "concat"}}
    assert {f["name"] for f in manifest["features"]} == {"input_ids", "segment_ids", "positions"}


def test_same_seed_gives_identical_bytes_with_one_worker_or_two_processes(tmp_path):
    args = ("--seq-len", 128, "--num-shards", 3, "--num-buckets", 3, "--read-range-mb", 1, "--validation-fraction", 0.1, "--seed", 7)
    one, one_dir = build(tmp_path / "one", *args, runner=IN_MEMORY)
    two, two_dir = build(tmp_path / "two", *args, runner=TWO_PROCESSES)
    assert assert_identical_shards(one_dir, two_dir) == 2 * (3 + 1)
    for m in (one, two):
        for key in ("started_at", "finished_at", "version"):
            m.pop(key)
    assert one == two
