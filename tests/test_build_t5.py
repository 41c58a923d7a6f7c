"""End to end: span_corruption, prefix_lm and ul2 through the whole pipeline, read back by tf.data and pyarrow."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, assert_identical_shards, build, read_parquet, read_tf

INPUTS = 128


def reconstruct(inputs: np.ndarray, targets: np.ndarray, sentinels: set[int], eos: int, lead: bool) -> list[int]:
    """The raw piece: the inputs' non-noise runs with each sentinel replaced by its span from the targets."""
    inputs = list(inputs[1 if lead else 0 : list(inputs).index(eos)])
    targets = list(targets[: list(targets).index(eos)])
    spans, current = {}, None
    for t in targets:
        if t in sentinels:
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans.pop(t) if t in sentinels else [t])
    assert not spans
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    common = ("--inputs-length", INPUTS, "--num-shards", 3, "--validation-fraction", 0.02)
    return {
        "span_corruption": build(tmp_path_factory.mktemp("sc"), "--objective", "span_corruption", *common),
        "ul2": build(tmp_path_factory.mktemp("ul2"), "--objective", "ul2", "--targets-length", INPUTS, *common),
        "prefix_lm": build(tmp_path_factory.mktemp("plm"), "--objective", "prefix_lm", *common),
        "decoder_only": build(tmp_path_factory.mktemp("dec"), "--objective", "prefix_lm", "--prefix-layout", "decoder_only", *common),
    }


@pytest.mark.parametrize("name", ["span_corruption", "ul2", "prefix_lm", "decoder_only"])
def test_tf_data_and_parquet_agree(builds, name):
    manifest, version_dir = builds[name]
    tf_rows, pq_rows = read_tf(version_dir, manifest), read_parquet(version_dir)
    assert set(tf_rows) == {f["name"] for f in manifest["features"]}
    for feature in manifest["features"]:
        assert tf_rows[feature["name"]].shape[1] == feature["length"]
        assert np.array_equal(tf_rows[feature["name"]], pq_rows[feature["name"]])
    assert tf_rows[next(iter(tf_rows))].shape[0] == manifest["totals"]["train"]["examples"] > 2000


@pytest.mark.parametrize("name", ["span_corruption", "ul2", "prefix_lm"])
def test_examples_decode_back_to_every_token_of_the_split(builds, sample_docs, sample_token_ids, name):
    manifest, version_dir = builds[name]
    ids = manifest["tokenizer"]["special_ids"]
    sentinels, eos = set(ids["extra_ids"]), ids["eos"]
    mode_ids = {ids[m] for m in ("[NLU]", "[NLG]", "[S2S]")}
    splits = [read_tf(version_dir, manifest, split) for split in ("train", "validation")]
    rows = {k: np.concatenate([s[k] for s in splits]) for k in splits[0]}
    tokens = collections.Counter()
    for i, (inputs, targets) in enumerate(zip(rows["inputs"], rows["targets"])):
        prefix_lm, lead = name == "prefix_lm", False
        if name == "ul2":
            denoiser = manifest["objective"]["params"]["denoisers"][rows["denoiser"][i, 0]]
            assert inputs[0] == ids[denoiser["mode"]] and inputs[0] in mode_ids
            prefix_lm, lead = denoiser["prefix_lm"], True
        if prefix_lm:
            start = 1 if lead else 0
            tokens.update(list(inputs[start : list(inputs).index(eos)]) + list(targets[: list(targets).index(eos)]))
        else:
            tokens.update(reconstruct(inputs, targets, sentinels, eos, lead))
    c = manifest["counters"]
    dropped = c["objective"].get("short_piece_tokens_dropped", 0)
    corpus = collections.Counter(t for doc in sample_token_ids for t in doc)
    assert sum(tokens.values()) + dropped == sum(corpus.values())  # nothing lost but the counted short pieces
    assert not (tokens - corpus)  # nothing invented
    assert max(rows["inputs"].max(), rows["targets"].max()) < manifest["tokenizer"]["vocab_size"]


def test_ul2_needs_more_sentinels_and_the_vocab_grows_to_hold_them(builds):
    manifest, _ = builds["ul2"]
    tok = manifest["tokenizer"]
    sentinels = tok["special_ids"]["extra_ids"]
    assert len(sentinels) == len(set(sentinels)) >= 100
    assert tok["vocab_size"] == tok["model_size"] + len(sentinels) - 100  # the model reserves 100; the rest appended
    shares = manifest["counters"]["objective_summary"]
    assert all(abs(shares[f"denoiser_{i}_share"] - 1 / 7) < 0.03 for i in range(7))


def test_decoder_only_loss_mask_starts_after_the_prefix(builds):
    manifest, version_dir = builds["decoder_only"]
    rows = read_tf(version_dir, manifest)
    for ids, mask, (prefix,) in zip(rows["input_ids"], rows["loss_mask"], rows["prefix_length"]):
        assert np.all(mask[:prefix] == 0) and mask[prefix] == 1
        assert np.array_equal(mask[prefix:] == 1, np.arange(prefix, ids.size) <= np.flatnonzero(ids)[-1])


def test_ul2_bytes_identical_with_one_worker_or_two_processes(tmp_path):
    args = ("--objective", "ul2", "--inputs-length", INPUTS, "--targets-length", INPUTS, "--num-shards", 2, "--num-buckets", 3, "--read-range-mb", 1, "--seed", 3)
    _, one_dir = build(tmp_path / "one", *args, runner=IN_MEMORY)
    _, two_dir = build(tmp_path / "two", *args, runner=TWO_PROCESSES)
    assert assert_identical_shards(one_dir, two_dir) == 2 * (2 + 1)
