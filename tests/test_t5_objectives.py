"""Span corruption, prefix LM and UL2 on the real sample corpus (SPEC §2; issue #4).

Every example is decoded back: sentinels in order and paired, noise counted
against the counting rule written out here, and the pieces, in order,
rebuild the bucket's token stream. Statistical checks use fixed seeds and
bounds the reference algorithm meets with margin.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from transforms.documents import DocBatch
from transforms.errors import ConfigError
from transforms.objectives.t5 import (
    PrefixLM,
    SpanCorruption,
    noise_counts,
    random_segmentation,
    random_spans_helper,
    random_spans_noise_mask,
)
from transforms.objectives.ul2 import DEFAULT_DENOISERS, UL2, denoiser_sizes
from transforms.vocab import Vocab

# Upper 0.1% points of the chi-square distribution.
CHI2_CRITICAL_DF6 = 22.458
CHI2_CRITICAL_DF9 = 27.877
CHI2_CRITICAL_DF30 = 59.703


@pytest.fixture(scope="module")
def batch(sample_docs, sp) -> DocBatch:
    encoded = sp.encode([d["text"] for d in sample_docs], out_type="numpy")
    return DocBatch.from_token_lists([[ids] for ids in encoded])


@pytest.fixture(scope="module")
def vocab200(sp) -> Vocab:
    return Vocab.from_processor(sp, extra_ids=200)


def counting_rule(n: int, density: float, mean_span: float) -> tuple[int, int]:
    """SPEC §2: (noise tokens, noise spans) of a piece of n tokens, written out independently (float32 as T5)."""
    num_noise = min(max(round(float(np.float32(n) * np.float32(density))), 1), n - 1)
    return num_noise, max(1, round(float(np.float32(num_noise) / np.float32(mean_span))))


def real_tokens(row: np.ndarray, eos: int, pad: int) -> np.ndarray:
    """The row up to and including its eos (text never encodes to eos); padding after it."""
    end = int(np.flatnonzero(row == eos)[0]) + 1
    assert (row[end:] == pad).all()
    return row[:end]


def decode_span_example(inputs: np.ndarray, targets: np.ndarray, vocab: Vocab, lead: int | None = None):
    """(raw piece, noise tokens, noise spans) rebuilt from one span-corrupted example."""
    sentinel_rank = np.full(vocab.size, -1)
    sentinel_rank[list(vocab.sentinels)] = np.arange(len(vocab.sentinels))
    body = real_tokens(inputs, vocab.eos, vocab.pad)[:-1]
    if lead is not None:
        assert body[0] == lead
        body = body[1:]
    answer = real_tokens(targets, vocab.eos, vocab.pad)[:-1]
    in_marks = np.flatnonzero(sentinel_rank[body] >= 0)
    out_marks = np.flatnonzero(sentinel_rank[answer] >= 0)
    num_spans = in_marks.size
    assert (sentinel_rank[body[in_marks]] == np.arange(num_spans)).all()
    assert (sentinel_rank[answer[out_marks]] == np.arange(num_spans)).all()
    assert out_marks[0] == 0 and (np.diff(np.append(out_marks, answer.size)) >= 2).all()
    assert (np.diff(in_marks) >= 2).all(), "two noise spans must be separated by non-noise tokens"
    spans = np.split(answer, out_marks[1:])
    kept = np.split(body, in_marks)
    piece = np.concatenate([kept[0]] + [np.concatenate([span[1:], rest[1:]]) for span, rest in zip(spans, kept[1:])])
    return piece, answer.size - num_spans, num_spans


def decode_prefix_example(inputs: np.ndarray, targets: np.ndarray, vocab: Vocab, lead: int | None = None):
    """(raw piece, prefix length) of one encoder-decoder prefix LM example."""
    prefix = real_tokens(inputs, vocab.eos, vocab.pad)[:-1]
    if lead is not None:
        assert prefix[0] == lead
        prefix = prefix[1:]
    rest = real_tokens(targets, vocab.eos, vocab.pad)[:-1]
    assert prefix.size >= 1 and rest.size >= 1
    return np.concatenate([prefix, rest]), prefix.size


def build(objective, batch: DocBatch, seed: int = 0):
    examples = objective.build(batch, np.random.default_rng(seed))
    assert objective.schema.check(examples.features) == examples.size
    return examples


@pytest.mark.parametrize(
    "mean_span, density, raw, targets",
    [
        (3, 0.15, 568, 114),
        (8, 0.15, 588, 100),
        (3, 0.5, 766, 512),
        (8, 0.5, 908, 512),
        (64, 0.15, 600, 92),
        (64, 0.5, 1006, 512),
    ],
)
def test_helper_reproduces_t5_figures(mean_span, density, raw, targets):
    assert random_spans_helper(512, density, mean_span) == (raw, targets)


@pytest.mark.parametrize("density, mean_span", [(0.15, 3), (0.15, 8), (0.5, 3), (0.5, 8), (0.15, 64), (0.5, 64), (0.3, 1)])
def test_noise_counts_follow_the_counting_rule(density, mean_span):
    lengths = np.arange(2, 1200)
    noise, spans = noise_counts(lengths, density, mean_span)
    assert list(zip(noise.tolist(), spans.tolist())) == [counting_rule(n, density, mean_span) for n in lengths.tolist()]


def test_noise_mask_at_every_piece_length():
    rng = np.random.default_rng(3)
    for density, mean_span in [(0.15, 3), (0.5, 3), (0.15, 64)]:
        for n in range(2, 800, 7):
            mask = random_spans_noise_mask(n, density, mean_span, 5, rng)
            starts = mask & ~np.pad(mask[:, :-1], ((0, 0), (1, 0)))
            num_noise, num_spans = counting_rule(n, density, mean_span)
            assert (mask.sum(1) == num_noise).all() and (starts.sum(1) == num_spans).all()
            assert not mask[:, 0].any() and mask[:, -1].all(), "unrolled masks start with non-noise and end with noise"


def test_random_segmentation_is_a_uniform_composition():
    parts = random_segmentation(6, 3, 60000, np.random.default_rng(5))
    assert (parts > 0).all() and (parts.sum(1) == 6).all()
    compositions, counts = np.unique(parts, axis=0, return_counts=True)
    assert len(compositions) == math.comb(5, 2)
    expected = parts.shape[0] / len(compositions)
    assert ((counts - expected) ** 2 / expected).sum() < CHI2_CRITICAL_DF9


def test_span_corruption_examples_rebuild_the_stream(batch, vocab):
    objective = SpanCorruption.from_options({}, vocab)
    assert (objective.inputs_length, objective.targets_length, objective.sizes.raw_length) == (512, 114, 568)
    examples = build(objective, batch)
    assert examples.size >= 700
    pieces, total_noise, total_spans = [], 0, 0
    for inputs, targets in zip(examples.features["inputs"], examples.features["targets"]):
        piece, num_noise, num_spans = decode_span_example(inputs, targets, vocab)
        assert (num_noise, num_spans) == counting_rule(piece.size, 0.15, 3)
        pieces.append(piece)
        total_noise += num_noise
        total_spans += num_spans
    lengths = [p.size for p in pieces]
    assert lengths[:-1] == [568] * (len(pieces) - 1) and 2 <= lengths[-1] <= 568
    np.testing.assert_array_equal(np.concatenate(pieces), batch.tokens)
    counters = examples.counters
    assert counters["noise_tokens"] == total_noise and counters["noise_spans"] == total_spans
    assert counters["raw_tokens"] == batch.num_tokens
    summary = objective.summarize(counters)
    assert abs(summary["noise_fraction"] - 0.15) < 0.005
    assert abs(summary["mean_noise_span_length"] - 3) < 0.05 * 3
    assert summary["noise_fraction"] == total_noise / batch.num_tokens


def test_noise_span_lengths_are_uniform_compositions(batch, vocab):
    """Pooled span lengths of full pieces (N = 85 noise tokens in k = 28 spans).

    Every part of a uniform composition has P(L = l) = C(N−l−1, k−2) / C(N−1, k−1).
    """
    examples = build(SpanCorruption(vocab), batch, seed=11)
    num_noise, num_spans = counting_rule(568, 0.15, 3)
    sentinel = np.isin(examples.features["targets"], vocab.sentinels) | (examples.features["targets"] == vocab.eos)
    lengths = np.concatenate([np.diff(np.flatnonzero(row)) - 1 for row in sentinel[:-1]])
    assert lengths.size == num_spans * (examples.size - 1)
    compositions = math.comb(num_noise - 1, num_spans - 1)
    probability = np.array([math.comb(num_noise - l - 1, num_spans - 2) for l in range(1, 7)]) / compositions
    expected = lengths.size * np.append(probability, 1 - probability.sum())
    observed = np.array([np.count_nonzero(lengths == l) for l in range(1, 7)] + [np.count_nonzero(lengths >= 7)])
    assert ((observed - expected) ** 2 / expected).sum() < CHI2_CRITICAL_DF6


def test_random_roll_sizes_for_one_more_span(batch, vocab):
    objective = SpanCorruption.from_options({"random_roll": True}, vocab)
    assert (objective.sizes.raw_length, objective.targets_length) == (567, 115)
    assert SpanCorruption.sentinels_needed({"random_roll": True}) == counting_rule(567, 0.15, 3)[1] + 1
    examples = build(objective, batch)
    pieces, starts_with_noise = [], 0
    for inputs, targets in zip(examples.features["inputs"], examples.features["targets"]):
        piece, num_noise, num_spans = decode_span_example(inputs, targets, vocab)
        expected_noise, expected_spans = counting_rule(piece.size, 0.15, 3)
        assert num_noise == expected_noise and num_spans in (expected_spans, expected_spans + 1)
        starts_with_noise += int(inputs[0] == vocab.sentinels[0])
        pieces.append(piece)
    np.testing.assert_array_equal(np.concatenate(pieces), batch.tokens)
    assert 0.05 < starts_with_noise / examples.size < 0.3  # a noise span covers the first token with probability ≈ 0.15


def test_prefix_lm_split_is_uniform(batch, vocab):
    objective = PrefixLM.from_options({"inputs_length": 33}, vocab)
    examples = build(objective, batch, seed=2)
    features = examples.features
    pieces, splits = zip(*(decode_prefix_example(i, t, vocab) for i, t in zip(features["inputs"], features["targets"])))
    np.testing.assert_array_equal(np.concatenate(pieces), batch.tokens)
    full = np.array([s for p, s in zip(pieces, splits) if p.size == 32])
    assert full.size == batch.num_tokens // 32
    observed = np.bincount(full, minlength=32)[1:]
    assert observed.size == 31 and observed.sum() == full.size
    expected = full.size / 31
    assert ((observed - expected) ** 2 / expected).sum() < CHI2_CRITICAL_DF30


def test_prefix_lm_encoder_decoder_lengths(batch, vocab):
    objective = PrefixLM(vocab)
    assert objective.schema.names == ["inputs", "targets"] and objective.targets_length == 512
    examples = build(objective, batch)
    features = examples.features
    lengths = [decode_prefix_example(i, t, vocab)[0].size for i, t in zip(features["inputs"], features["targets"])]
    assert lengths[:-1] == [511] * (len(lengths) - 1)


def test_decoder_only_prefix_lm(batch, vocab):
    objective = PrefixLM.from_options({"prefix_layout": "decoder_only", "inputs_length": 128}, vocab)
    assert objective.schema.names == ["input_ids", "loss_mask", "prefix_length"]
    examples = build(objective, batch)
    input_ids, loss_mask = examples.features["input_ids"], examples.features["loss_mask"]
    prefix_length = examples.features["prefix_length"][:, 0]
    real = (input_ids != vocab.pad).sum(axis=1)
    position = np.arange(128)
    assert (prefix_length >= 1).all() and (prefix_length <= real - 1).all()
    np.testing.assert_array_equal(loss_mask, (position >= prefix_length[:, None]) & (position < real[:, None]))
    documents_with_eos = [np.append(batch.doc_tokens(d), vocab.eos) for d in range(batch.num_docs)]
    np.testing.assert_array_equal(np.concatenate([row[:n] for row, n in zip(input_ids, real)]), np.concatenate(documents_with_eos))
    assert (real[:-1] == 128).all()


def check_ul2_examples(objective: UL2, examples, batch: DocBatch, vocab: Vocab) -> np.ndarray:
    """Decode every UL2 example against its denoiser; return the denoiser of each example."""
    denoiser = examples.features["denoiser"][:, 0]
    pieces = []
    for index, inputs, targets in zip(denoiser.tolist(), examples.features["inputs"], examples.features["targets"]):
        d = objective.denoisers[index]
        lead = vocab.mode_token(d.mode) if objective.mode_tokens else None
        if d.prefix_lm:
            piece, _ = decode_prefix_example(inputs, targets, vocab, lead)
        else:
            piece, num_noise, num_spans = decode_span_example(inputs, targets, vocab, lead)
            assert (num_noise, num_spans) == counting_rule(piece.size, d.density, d.mean_span)
        assert piece.size == objective.sizes[index].raw_length or len(pieces) == examples.size - 1
        pieces.append(piece)
    np.testing.assert_array_equal(np.concatenate(pieces), batch.tokens)
    return denoiser


def test_ul2_default_mixture(batch, vocab200):
    objective = UL2.from_options({}, vocab200)
    assert [s.raw_length for s in objective.sizes] == [567, 587, 765, 907, 599, 1004, 511]
    assert UL2.sentinels_needed({}) == 127
    examples = build(objective, batch)
    denoiser = check_ul2_examples(objective, examples, batch, vocab200)
    mode_ids = np.array([vocab200.mode_token(d.mode) for d in DEFAULT_DENOISERS])
    np.testing.assert_array_equal(examples.features["inputs"][:, 0], mode_ids[denoiser])
    assert set(denoiser.tolist()) == set(range(7))
    assert sum(examples.counters[f"denoiser_{i}"] for i in range(7)) == examples.size


def test_ul2_without_mode_tokens(batch, vocab, vocab200):
    options = {"mode_tokens": False}
    assert UL2.sentinels_needed(options) == 128
    with pytest.raises(ConfigError, match="--extra-ids 128"):
        UL2.from_options(options, vocab)
    objective = UL2.from_options(options, vocab200)
    assert [s.raw_length for s in objective.sizes] == [568, 588, 766, 908, 600, 1006, 511]
    examples = build(objective, batch)
    check_ul2_examples(objective, examples, batch, vocab200)
    assert not np.isin(examples.features["inputs"][:, 0], [vocab200.mode_token(d.mode) for d in DEFAULT_DENOISERS]).any()


def test_ul2_shares_follow_the_rates(batch, vocab, tmp_path):
    uniform = UL2.from_options({"inputs_length": 48, "targets_length": 48}, vocab)
    examples = build(uniform, batch, seed=4)
    check_ul2_examples(uniform, examples, batch, vocab)
    shares = np.bincount(examples.features["denoiser"][:, 0], minlength=7) / examples.size
    assert examples.size > 6000 and (np.abs(shares - 1 / 7) < 0.02).all()
    assert uniform.summarize(examples.counters)["denoiser_2_share"] == shares[2]

    spec = tmp_path / "denoisers.json"
    spec.write_text(
        json.dumps(
            [
                {"name": "R", "mean_span": 3, "density": 0.15, "mode": "[NLU]", "rate": 2},
                {"name": "X", "mean_span": 8, "density": 0.5, "mode": "[NLG]", "rate": 1},
                {"name": "S", "prefix_lm": True, "mode": "[S2S]", "rate": 1},
            ]
        )
    )
    weighted = UL2.from_options({"inputs_length": 48, "targets_length": 48, "ul2_denoisers": str(spec)}, vocab)
    assert [d["rate"] for d in weighted.params()["denoisers"]] == [0.5, 0.25, 0.25]
    examples = build(weighted, batch, seed=4)
    check_ul2_examples(weighted, examples, batch, vocab)
    shares = np.bincount(examples.features["denoiser"][:, 0], minlength=3) / examples.size
    assert (np.abs(shares - [0.5, 0.25, 0.25]) < 0.02).all()


def test_every_denoiser_fits_its_lengths():
    """For every piece length a denoiser can cut, inputs fit I and targets fit T (the counting rule, all lengths)."""
    for mode_tokens, inputs_length in [(True, 512), (False, 512), (True, 48)]:
        for d, s in zip(DEFAULT_DENOISERS, denoiser_sizes(DEFAULT_DENOISERS, inputs_length, mode_tokens, False)):
            for n in range(2, s.raw_length + 1):
                if d.prefix_lm:
                    longest_inputs, longest_targets = int(mode_tokens) + (n - 1) + 1, (n - 1) + 1
                else:
                    num_noise, num_spans = counting_rule(n, d.density, d.mean_span)
                    longest_inputs = int(mode_tokens) + n - num_noise + num_spans + 1
                    longest_targets = num_noise + num_spans + 1
                assert longest_inputs <= inputs_length and longest_targets <= s.targets_length <= 512


def test_same_seed_same_examples(batch, vocab200):
    for objective in (SpanCorruption(vocab200), PrefixLM(vocab200), UL2(vocab200)):
        first, again, other = build(objective, batch, 7), build(objective, batch, 7), build(objective, batch, 8)
        for name in first.features:
            np.testing.assert_array_equal(first.features[name], again.features[name])
        assert first.counters == again.counters
        assert any(
            first.features[name].shape != other.features[name].shape or (first.features[name] != other.features[name]).any()
            for name in first.features
        )


def test_short_and_empty_buckets(vocab):
    objective = SpanCorruption(vocab)
    empty = objective.build(DocBatch.empty(), np.random.default_rng(0))
    assert empty.size == 0 and objective.schema.check(empty.features) == 0
    one_token_tail = DocBatch.from_token_lists([[np.arange(10, 10 + 568)], [[42]]])
    examples = build(objective, one_token_tail)
    assert examples.size == 1
    assert examples.counters["short_pieces_dropped"] == 1 and examples.counters["short_piece_tokens_dropped"] == 1


@pytest.mark.parametrize(
    "objective, options, flag",
    [
        (SpanCorruption, {"targets_length": 100}, "--targets-length"),
        (SpanCorruption, {"noise_density": 1.2}, "--noise-density"),
        (SpanCorruption, {"noise_density": 0.0}, "--noise-density"),
        (SpanCorruption, {"mean_noise_span_length": 0.5}, "--mean-noise-span-length"),
        (SpanCorruption, {"noise_density": 0.9, "mean_noise_span_length": 1}, "--noise-density"),
        (SpanCorruption, {"inputs_length": 2}, "--inputs-length"),
        (SpanCorruption, {"noise_density": 0.5, "mean_noise_span_length": 1.5}, "--extra-ids"),
        (PrefixLM, {"prefix_layout": "bidirectional"}, "--prefix-layout"),
        (PrefixLM, {"targets_length": 100}, "--targets-length"),
        (PrefixLM, {"inputs_length": 2}, "--inputs-length"),
        (UL2, {"targets_length": 256}, "--targets-length"),
        (UL2, {"ul2_denoisers": "not json"}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": "[{]"}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": "[]"}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": '[{"name": "R", "mode": "[NLU]"}]'}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": '[{"name": "R", "mode": "[XYZ]", "mean_span": 3, "density": 0.15}]'}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": '[{"name": "R", "mode": "[NLU]", "mean_span": 3, "density": 1.5}]'}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": '[{"name": "S", "mode": "[S2S]", "prefix_lm": true, "density": 0.5}]'}, "--ul2-denoisers"),
        (UL2, {"ul2_denoisers": '[{"name": "S", "mode": "[S2S]", "prefix_lm": true, "rate": 0}]'}, "--ul2-denoisers"),
    ],
)
def test_config_errors_name_the_flag(vocab, objective, options, flag):
    with pytest.raises(ConfigError, match=flag):
        objective.from_options(options, vocab)


def test_noise_count_rounds_in_float32_as_t5():
    """T5's `random_spans_noise_mask` rounds float32(n) × float32(density): 28.500002 at n = 190 gives 29, float64's 28.499… 28."""
    noise, _ = noise_counts([190, 350, 390, 191], 0.15, 3)
    assert noise.tolist() == [29, 53, 59, 29]


@pytest.mark.parametrize(
    "mode_tokens, expected",
    [
        (True, [(567, 114), (587, 100), (765, 510), (907, 512), (599, 92), (1004, 511), (511, 511)]),
        (False, [(568, 114), (588, 100), (766, 512), (908, 512), (600, 92), (1006, 512), (511, 511)]),
    ],
)
def test_ul2_piece_sizes_are_specs(mode_tokens, expected):
    """SPEC §2 ul2: (raw length, targets length) of every default denoiser at inputs length 512."""
    sizes = denoiser_sizes(DEFAULT_DENOISERS, 512, mode_tokens, False)
    assert [(s.raw_length, s.targets_length) for s in sizes] == expected


def test_s_denoiser_inputs_reach_the_inputs_length(batch, vocab):
    """[S2S] + a prefix of up to n − 1 tokens + eos: pieces of I − 1 tokens fill I."""
    s_only = json.dumps([{"name": "S", "mode": "[S2S]", "prefix_lm": True}])
    objective = UL2.from_options({"inputs_length": 64, "targets_length": 64, "ul2_denoisers": s_only}, vocab)
    examples = build(objective, batch, seed=1)
    check_ul2_examples(objective, examples, batch, vocab)
    used = (examples.features["inputs"] != vocab.pad).sum(axis=1)
    assert used.max() == 64 and (used <= 64).all()


def test_decoder_only_prefix_lm_ends_every_document_with_eos(vocab):
    """As T5's decoder-only path and clm: eos after every document of the stream, none at a cut; rows are full."""
    rng = np.random.default_rng(6)
    lengths = rng.integers(1, 90, size=60)
    docs = [[rng.integers(10, 500, size=n)] for n in lengths]
    objective = PrefixLM.from_options({"prefix_layout": "decoder_only", "inputs_length": 32}, vocab)
    examples = build(objective, DocBatch.from_token_lists(docs))
    rows = examples.features["input_ids"]
    real = (rows != vocab.pad).sum(axis=1)
    assert (real[:-1] == 32).all()
    stream = np.concatenate([row[:n] for row, n in zip(rows, real)])
    expected = np.concatenate([np.append(doc[0], vocab.eos) for doc in docs])
    np.testing.assert_array_equal(stream, expected)
    assert np.array_equal(np.flatnonzero(stream == vocab.eos) + 1, np.cumsum(lengths + 1))
