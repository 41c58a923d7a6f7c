"""End to end: the BERT objectives through the whole pipeline, read with BERT's own parse spec."""

from __future__ import annotations

import json

import numpy as np
import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, assert_identical_shards, build, read_parquet, shard_files

SEQ_LEN, PREDICTIONS = 128, 20


def bert_parse_spec(tf, with_labels: bool):
    """What google-research/bert's run_pretraining.py `input_fn_builder` declares, written out independently."""
    spec = {
        "input_ids": tf.io.FixedLenFeature([SEQ_LEN], tf.int64),
        "input_mask": tf.io.FixedLenFeature([SEQ_LEN], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([SEQ_LEN], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([PREDICTIONS], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([PREDICTIONS], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([PREDICTIONS], tf.float32),
    }
    if with_labels:
        spec["next_sentence_labels"] = tf.io.FixedLenFeature([1], tf.int64)
    return spec


def read_bert(version_dir, with_labels: bool, split="train"):
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(shard_files(version_dir, split, "tfrecord"))
    batches = list(ds.batch(4096).map(lambda r: tf.io.parse_example(r, bert_parse_spec(tf, with_labels))))
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


@pytest.fixture(scope="module")
def nsp(tmp_path_factory):
    return build(tmp_path_factory.mktemp("nsp"), "--objective", "mlm_nsp", "--seq-len", SEQ_LEN, "--max-predictions", PREDICTIONS, "--num-shards", 3)


def test_nsp_reads_with_berts_parse_spec_and_keeps_the_layout(nsp):
    manifest, version_dir = nsp
    ids = manifest["tokenizer"]["special_ids"]
    rows = read_bert(version_dir, with_labels=True)
    n = rows["input_ids"].shape[0]
    assert n == manifest["totals"]["train"]["examples"] > 2000
    for i in range(n):
        real = rows["input_mask"][i].astype(bool)
        length = real.sum()
        assert real[:length].all() and not real[length:].any()
        tokens = rows["input_ids"][i]
        assert tokens[0] == ids["[CLS]"]
        seps = np.flatnonzero(tokens == ids["[SEP]"])
        assert len(seps) == 2 and seps[1] == length - 1
        assert np.array_equal(rows["segment_ids"][i], ((np.arange(SEQ_LEN) > seps[0]) & real).astype(np.int64))
        weights = rows["masked_lm_weights"][i]
        k = int(weights.sum())
        assert k == min(PREDICTIONS, max(1, round(length * 0.15)))
        positions = rows["masked_lm_positions"][i][:k]
        assert np.all(np.diff(positions) > 0) and np.all(positions < length)
        assert not np.isin(positions, seps).any() and positions.min() > 0
    share = manifest["counters"]["objective_summary"]["next_sentence_label_1_share"]
    assert abs(share - 0.5) < 0.02
    labels = np.concatenate([rows["next_sentence_labels"], read_bert(version_dir, True, "validation")["next_sentence_labels"]])
    assert labels.mean() == pytest.approx(share, abs=1e-12)


def test_nsp_parquet_holds_the_same_rows(nsp):
    manifest, version_dir = nsp
    tf_rows, pq_rows = read_bert(version_dir, with_labels=True), read_parquet(version_dir)
    for name, values in tf_rows.items():
        assert np.array_equal(values, pq_rows[name]), name
    assert pq_rows["masked_lm_weights"].dtype == np.float32


def test_unmasked_rows_can_be_masked_by_the_trainer(tmp_path, sample_corpus_path):
    """--masking none writes plain sequences; the exported masker, fed from the manifest, masks them on the fly."""
    from transforms.objectives.bert_masking import mask_tokens
    from transforms.vocab import Vocab

    manifest, version_dir = build(tmp_path, "--objective", "mlm", "--seq-len", SEQ_LEN, "--masking", "none", "--num-shards", 2, "--input", sample_corpus_path)
    assert {f["name"] for f in manifest["features"]} == {"input_ids", "input_mask", "segment_ids"}
    rows = read_parquet(version_dir)
    vocab = Vocab.from_manifest(manifest["tokenizer"])
    masked = mask_tokens(rows["input_ids"], rows["input_mask"], np.random.default_rng(0), vocab, 0.15, PREDICTIONS)
    weights = masked["masked_lm_weights"]
    assert weights.sum() / rows["input_mask"].sum() == pytest.approx(0.15, abs=0.01)
    picked = np.take_along_axis(rows["input_ids"], masked["masked_lm_positions"], axis=1)[weights > 0]
    assert np.array_equal(picked, masked["masked_lm_ids"][weights > 0])


def test_sop_from_bert_format_text(tmp_path, sample_docs):
    """Plain-text input: one sentence a line, blank lines between documents (BERT's own input format)."""
    from transforms.sentences import split_sentences

    path = tmp_path / "bert.txt"
    with open(path, "w", encoding="utf-8") as f:
        for d in sample_docs:
            f.write("\n".join(split_sentences(d["text"])) + "\n\n")
    manifest, version_dir = build(tmp_path / "out", "--objective", "mlm_sop", "--input", str(path), "--seq-len", SEQ_LEN, "--max-predictions", PREDICTIONS, "--num-shards", 2)
    assert manifest["counters"]["records_read"] == len(sample_docs)
    share = manifest["counters"]["objective_summary"]["next_sentence_label_1_share"]
    assert abs(share - 0.5) < 0.02
    assert read_bert(version_dir, with_labels=True)["input_ids"].shape[0] == manifest["totals"]["train"]["examples"]


def test_nsp_bytes_identical_with_one_worker_or_two_processes(tmp_path):
    args = ("--objective", "mlm_nsp", "--seq-len", SEQ_LEN, "--max-predictions", PREDICTIONS, "--num-shards", 2, "--num-buckets", 3, "--read-range-mb", 1, "--dupe-factor", 2, "--whole-word-mask")
    _, one_dir = build(tmp_path / "one", *args, runner=IN_MEMORY)
    _, two_dir = build(tmp_path / "two", *args, runner=TWO_PROCESSES)
    assert assert_identical_shards(one_dir, two_dir) == 2 * (2 + 1)


def test_nsp_labels_balanced_on_free_text_with_one_sentence_documents(tmp_path, sample_docs):
    """JSONL free text through the real sentence splitter, with a one-sentence document after every sample document."""
    from transforms.sentences import split_sentences

    path = tmp_path / "free.jsonl"
    one_sentence = 0
    with open(path, "w", encoding="utf-8") as f:
        for d in sample_docs:
            sentences = split_sentences(d["text"])
            one_sentence += len(sentences) == 1
            f.write(json.dumps({"id": d["id"], "text": d["text"]}) + "\n")
            f.write(json.dumps({"id": d["id"] + "/first", "text": sentences[0]}) + "\n")
    manifest, _ = build(tmp_path / "out", "--objective", "mlm_nsp", "--input", str(path), "--seq-len", SEQ_LEN, "--masking", "none", "--num-shards", 1)
    counters = manifest["counters"]
    assert counters["objective"]["instances"] > 5000
    assert abs(counters["objective_summary"]["next_sentence_label_1_share"] - 0.5) < 0.02
    assert counters["objective"]["single_sentence_documents_skipped"] >= one_sentence + len(sample_docs) - 10
