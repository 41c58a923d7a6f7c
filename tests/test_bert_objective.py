"""The BERT objectives (mlm, mlm_nsp, mlm_sop) on real text: the sample corpus of Python docstrings.

Documents are split into sentences on ". " and newlines (enough for these
tests) and encoded with the sample SentencePiece model.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from transforms.documents import DocBatch
from transforms.errors import ConfigError
from transforms.objectives.bert import MaskedLM, MaskedLMNextSentence, MaskedLMSentenceOrder, truncated_pair_lengths
from transforms.objectives.bert_masking import mask_tokens

OBJECTIVES = {cls.name: cls for cls in (MaskedLM, MaskedLMNextSentence, MaskedLMSentenceOrder)}
PAIRS = ("mlm_nsp", "mlm_sop")
SENTENCE_BREAK = re.compile(r"(?<=\.) +|\n")
NUM_BUCKETS = 8


@pytest.fixture(scope="module")
def corpus(sample_docs, sp) -> list[list[list[int]]]:
    """Every sample document as a list of sentences of token ids."""
    texts = [[s for s in SENTENCE_BREAK.split(doc["text"]) if s.strip()] for doc in sample_docs]
    encoded = iter(sp.encode([s for sentences in texts for s in sentences]))
    docs = [[ids for ids in (next(encoded) for _ in sentences) if ids] for sentences in texts]
    return [doc for doc in docs if doc]


@pytest.fixture(scope="module")
def buckets(corpus) -> list[list[list[list[int]]]]:
    return [corpus[b::NUM_BUCKETS] for b in range(NUM_BUCKETS)]


def build(vocab, name: str, docs, seed: int = 0, **options):
    objective = OBJECTIVES[name].from_options(options, vocab)
    examples = objective.build(DocBatch.from_token_lists(docs), np.random.default_rng(seed))
    objective.schema.check(examples.features)
    return objective, examples


class Source:
    """A bucket's documents as one token stream, to find where an instance's tokens come from."""

    def __init__(self, docs):
        self.tokens = np.concatenate([np.asarray(s, dtype=np.int32) for doc in docs for s in doc])
        self.raw = self.tokens.astype("<i4").tobytes()
        self.sentence_offsets = np.concatenate([[0], np.cumsum([len(s) for doc in docs for s in doc])])
        doc_offsets = self.sentence_offsets[np.concatenate([[0], np.cumsum([len(doc) for doc in docs])])]
        self.boundary = np.zeros(self.tokens.size + 1, dtype=bool)
        self.boundary[self.sentence_offsets] = True
        self.doc_start = np.zeros(self.tokens.size + 1, dtype=bool)
        self.doc_start[doc_offsets] = True
        self.doc_of = np.repeat(np.arange(len(docs)), np.diff(doc_offsets))
        self.doc_end = doc_offsets[1:][self.doc_of]

    def find(self, seq: np.ndarray, start: int = 0, end: int | None = None) -> list[int]:
        """Every token position where `seq` occurs inside [start, end)."""
        needle = np.asarray(seq, dtype="<i4").tobytes()
        end = self.tokens.size if end is None else end
        found, at = [], self.raw.find(needle, 4 * start, 4 * end)
        while at != -1:
            if at % 4 == 0:
                found.append(at // 4)
            at = self.raw.find(needle, at + 1, 4 * end)
        return found

    def whole_sentences(self, at: int, length: int) -> bool:
        return bool(self.boundary[at] and self.boundary[at + length])


def check_rows(features, vocab, pairs: bool) -> None:
    """Layout of every row: [CLS] A [SEP] (B [SEP]), segment ids, input mask, padding."""
    ids, mask, segment = features["input_ids"], features["input_mask"], features["segment_ids"]
    num_rows, seq_len = ids.shape
    lengths = mask.sum(axis=1)
    columns = np.arange(seq_len)
    assert np.array_equal(mask, (columns < lengths[:, None]).astype(np.int32))
    assert (ids[:, 0] == vocab.cls).all() and not (ids[:, 1:] == vocab.cls).any()
    assert (ids[np.arange(num_rows), lengths - 1] == vocab.sep).all()
    assert (ids[mask == 0] == vocab.pad).all()
    separators = ids == vocab.sep
    if pairs:
        assert (separators.sum(axis=1) == 2).all()
        first_sep = separators.argmax(axis=1)
        assert (first_sep >= 2).all() and (first_sep <= lengths - 3).all(), "A and B hold at least one token each"
        assert np.array_equal(segment, ((columns > first_sep[:, None]) & (mask == 1)).astype(np.int32))
    else:
        assert not segment.any()


def check_predictions(unmasked, masked, vocab, masked_lm_prob: float, max_predictions: int) -> None:
    """The masked rows are the unmasked ones plus BERT's predictions, exactly as SPEC counts them."""
    for name in unmasked:
        if name != "input_ids":
            assert np.array_equal(unmasked[name], masked[name]), name
    original, ids, mask = unmasked["input_ids"], masked["input_ids"], unmasked["input_mask"]
    positions, labels, weights = masked["masked_lm_positions"], masked["masked_lm_ids"], masked["masked_lm_weights"]
    predicted = weights == 1.0
    assert ((weights == 0.0) | predicted).all()
    counts = predicted.sum(axis=1)
    assert np.array_equal(predicted, np.arange(max_predictions) < counts[:, None]), "real predictions come first"
    candidates = ((mask == 1) & (original != vocab.cls) & (original != vocab.sep)).sum(axis=1)
    rule = [min(max_predictions, max(1, round(int(n) * masked_lm_prob))) for n in mask.sum(axis=1)]
    assert np.array_equal(counts, np.minimum(rule, candidates))
    assert not positions[~predicted].any() and not labels[~predicted].any()
    assert ((np.diff(positions, axis=1) > 0) | ~predicted[:, 1:]).all(), "positions ascending"
    rows = np.nonzero(predicted)[0]
    cols = positions[predicted]
    assert (mask[rows, cols] == 1).all()
    assert not np.isin(original[rows, cols], [vocab.cls, vocab.sep]).any()
    assert np.array_equal(labels[predicted], original[rows, cols])
    untouched = np.ones(original.shape, dtype=bool)
    untouched[rows, cols] = False
    assert np.array_equal(ids[untouched], original[untouched])


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp", "mlm_sop"])
@pytest.mark.parametrize("seq_len", [128, 512])
def test_rows_and_predictions(corpus, vocab, name, seq_len):
    _, plain = build(vocab, name, corpus, seq_len=seq_len, masking="none")
    objective, masked = build(vocab, name, corpus, seq_len=seq_len)
    assert plain.size > (800 if seq_len == 512 else 3000)
    check_rows(plain.features, vocab, name in PAIRS)
    check_predictions(plain.features, masked.features, vocab, 0.15, objective.max_predictions)
    assert masked.counters["masked_positions"] == int(masked.features["masked_lm_weights"].sum())
    assert masked.counters["instances"] == masked.size


def test_mask_decisions_and_rate(corpus, vocab):
    """80% [MASK], 10% random ordinary token, 10% unchanged; 15% of real tokens predicted."""
    _, plain = build(vocab, "mlm", corpus, seq_len=128, masking="none", dupe_factor=3)
    _, masked = build(vocab, "mlm", corpus, seq_len=128, dupe_factor=3)
    original = plain.features["input_ids"]
    predicted = masked.features["masked_lm_weights"] == 1.0
    rows, cols = np.nonzero(predicted)[0], masked.features["masked_lm_positions"][predicted]
    now, before = masked.features["input_ids"][rows, cols], original[rows, cols]
    assert now.size > 150_000
    is_mask = now == vocab.mask
    unchanged = now == before
    replaced = ~is_mask & ~unchanged
    # A random replacement equals the original with probability ~1/7900: far inside the tolerance.
    assert abs(is_mask.mean() - 0.8) < 0.01
    assert abs(replaced.mean() - 0.1) < 0.01
    assert abs(unchanged.mean() - 0.1) < 0.01
    assert np.isin(now[replaced], vocab.ordinary_ids).all()
    special = [vocab.pad, vocab.eos, vocab.unk, *vocab.specials.values(), *vocab.sentinels]
    assert not np.isin(now[replaced], special).any()
    real_tokens = plain.features["input_mask"].sum()
    assert abs(predicted.sum() / real_tokens - 0.15) < 0.005


def test_prediction_cap(corpus, vocab):
    _, plain = build(vocab, "mlm", corpus, seq_len=512, short_seq_prob=0.0, masking="none")
    long = plain.features["input_mask"].sum(axis=1) >= 200
    assert long.sum() > 500
    ids, mask = plain.features["input_ids"][long], plain.features["input_mask"][long]
    out = mask_tokens(ids, mask, np.random.default_rng(0), vocab, 0.15, 20)
    assert (out["masked_lm_weights"].sum(axis=1) == 20).all()
    check_predictions({"input_ids": ids, "input_mask": mask}, {**out, "input_mask": mask}, vocab, 0.15, 20)


def check_mlm_stream(rows: np.ndarray, lengths: np.ndarray, docs, vocab) -> int:
    """The rows, read in order, are the documents in order: nothing lost, a [SEP] exactly at each
    document boundary inside a row, and a row ends mid-sentence only when it holds part of one sentence.

    Returns how many rows stopped although the next sentence (with its [SEP]) would have fit.
    """
    source = Source(docs)
    at = 0
    ended_mid_sentence = False
    room_left = 0
    for row, length in zip(rows, lengths):
        content = row[1 : length - 1]
        cuts = np.flatnonzero(content == vocab.sep)
        pieces = np.split(content, cuts)
        assert ended_mid_sentence or source.boundary[at]
        for i, piece in enumerate(pieces):
            piece = piece[1:] if i else piece
            if i:
                assert source.doc_start[at], "a [SEP] inside a row sits at a document boundary"
            assert piece.size and np.array_equal(source.tokens[at : at + piece.size], piece)
            assert not source.doc_start[at + 1 : at + piece.size].any(), "a document boundary inside a row has a [SEP]"
            at += piece.size
        ended_mid_sentence = not source.boundary[at]
        if ended_mid_sentence:
            assert cuts.size == 0 and not source.boundary[at - content.size + 1 : at].any()
        elif at < source.tokens.size:
            next_sentence = source.sentence_offsets[np.searchsorted(source.sentence_offsets, at, side="right")] - at
            room_left += content.size + source.doc_start[at] + next_sentence <= rows.shape[1] - 2
    assert at == source.tokens.size
    return room_left


@pytest.mark.parametrize("seq_len", [128, 512])
def test_mlm_packs_whole_sentences_across_documents(corpus, vocab, seq_len):
    _, plain = build(vocab, "mlm", corpus, seq_len=seq_len, masking="none")
    f = plain.features
    short_rows = check_mlm_stream(f["input_ids"], f["input_mask"].sum(axis=1), corpus, vocab)
    inner_seps = (f["input_ids"] == vocab.sep).sum(axis=1) - 1
    assert inner_seps.sum() > len(corpus) // 2, "rows cross document boundaries"
    assert 0.05 < short_rows / plain.size < 0.15, "short_seq_prob 0.1 gives short rows"
    _, full = build(vocab, "mlm", corpus, seq_len=seq_len, short_seq_prob=0.0, masking="none")
    f = full.features
    assert check_mlm_stream(f["input_ids"], f["input_mask"].sum(axis=1), corpus, vocab) == 0, "rows filled greedily"


def test_mlm_splits_long_sentences_losslessly(corpus, vocab):
    """Sentences longer than a row run on over several rows; nothing is truncated."""
    long_docs = sorted(corpus, key=lambda doc: -sum(map(len, doc)))[:40]
    docs = [[[t for s in doc for t in s]] if i % 2 else doc for i, doc in enumerate(long_docs)]
    assert max(len(s) for doc in docs for s in doc) > 3 * 128
    _, plain = build(vocab, "mlm", docs, seq_len=128, masking="none")
    check_mlm_stream(plain.features["input_ids"], plain.features["input_mask"].sum(axis=1), docs, vocab)
    assert plain.counters["sentences_split"] >= 20


def split_pair(row: np.ndarray, length: int, sep: int) -> tuple[np.ndarray, np.ndarray]:
    first_sep = int(np.argmax(row == sep))
    return row[1:first_sep], row[first_sep + 1 : length - 1]


def continues(source: Source, first: np.ndarray, second: np.ndarray, whole: bool) -> bool:
    """`second` follows `first` in one document: right after it, both whole sentences, when untruncated."""
    for at in source.find(first):
        after = at + first.size
        if whole:
            if (
                source.doc_end[at] >= after + second.size
                and np.array_equal(source.tokens[after : after + second.size], second)
                and source.whole_sentences(at, first.size)
                and source.whole_sentences(after, second.size)
            ):
                return True
        elif source.find(second, after, int(source.doc_end[at])):
            return True
    return False


def from_other_document(source: Source, a: np.ndarray, b: np.ndarray, whole: bool) -> bool:
    """A and B occur in two different documents (B as whole sentences, when untruncated)."""
    docs_a = {int(source.doc_of[at]) for at in source.find(a)}
    docs_b = {int(source.doc_of[at]) for at in source.find(b) if not whole or source.whole_sentences(at, b.size)}
    return bool(docs_a) and bool(docs_b) and len(docs_a | docs_b) > 1


@pytest.mark.parametrize("name", PAIRS)
def test_pairs_labels_and_content(buckets, vocab, name):
    """NSP: label 0 = B continues A in its document, label 1 = B from another document of the bucket.
    SOP: label 0 = A then B, label 1 = swapped. Labels balanced: 50% ± 2%."""
    labels = []
    for seed in range(2 if name == "mlm_nsp" else 3):
        for b, docs in enumerate(buckets):
            _, plain = build(vocab, name, docs, seed=100 * seed + b, seq_len=128, masking="none")
            label = plain.features["next_sentence_labels"][:, 0]
            labels.append(label)
            if seed:
                continue
            source = Source(docs)
            lengths = plain.features["input_mask"].sum(axis=1)
            for row, length, is_1 in zip(plain.features["input_ids"], lengths, label):
                a, b_side = split_pair(row, length, vocab.sep)
                whole = length < 128
                if name == "mlm_sop":
                    first, second = (b_side, a) if is_1 else (a, b_side)
                    assert continues(source, first, second, whole)
                elif is_1:
                    assert from_other_document(source, a, b_side, whole)
                else:
                    assert continues(source, a, b_side, whole)
    labels = np.concatenate(labels)
    assert labels.size > 15_000
    assert abs(labels.mean() - 0.5) < 0.02


@pytest.mark.parametrize("name", PAIRS)
def test_labels_balanced_when_single_sentences_reach_the_target(corpus, vocab, name):
    """At seq_len 16 most sentences alone reach the target: BERT's forced random next would give ~68% label 1."""
    objective, plain = build(vocab, name, corpus, seq_len=16, masking="none")
    assert plain.size > 15_000
    assert abs(plain.features["next_sentence_labels"].mean() - 0.5) < 0.02
    share = objective.summarize(plain.counters)["next_sentence_label_1_share"]
    assert share == plain.features["next_sentence_labels"].mean()


def test_single_document_bucket_uses_the_true_continuation(corpus, vocab):
    doc = max(corpus, key=len)
    _, plain = build(vocab, "mlm_nsp", [doc], seq_len=32, masking="none")
    assert plain.size > 10
    assert not plain.features["next_sentence_labels"].any()
    assert plain.counters["nsp_no_other_document"] > 3


def test_single_sentence_documents(corpus, vocab):
    """No true next exists: a one-sentence document makes no pair of its own (it only ever could add label 1); counted."""
    single = [[s] for doc in corpus[:600] for s in doc[:1]]
    _, nsp = build(vocab, "mlm_nsp", single, seq_len=128)
    assert nsp.size == 0 and nsp.counters["single_sentence_documents_skipped"] == len(single)
    _, sop = build(vocab, "mlm_sop", single, seq_len=128)
    assert sop.size == 0 and sop.counters["single_sentence_documents_skipped"] == len(single)


def test_pairs_are_truncated_to_fit(corpus, vocab):
    _, plain = build(vocab, "mlm_nsp", corpus, seq_len=32, short_seq_prob=0.0, masking="none")
    assert plain.counters["truncated_tokens"] > 10_000
    assert (plain.features["input_mask"].sum(axis=1) <= 32).all()


def whole_word_coverage(unmasked, masked, vocab) -> tuple[np.ndarray, np.ndarray]:
    """Per word of every row: its pieces and how many are predicted (a word starts at ▁ or after [CLS]/[SEP])."""
    ids, mask = unmasked["input_ids"], unmasked["input_mask"]
    candidate = (mask == 1) & (ids != vocab.cls) & (ids != vocab.sep)
    after_candidate = np.zeros_like(candidate)
    after_candidate[:, 1:] = candidate[:, :-1]
    starts = candidate & (vocab.starts_word[ids] | ~after_candidate)
    word = (np.cumsum(starts.reshape(-1)) - 1).reshape(ids.shape)
    predicted = np.zeros(ids.shape, dtype=bool)
    chosen = masked["masked_lm_weights"] == 1.0
    predicted[np.nonzero(chosen)[0], masked["masked_lm_positions"][chosen]] = True
    pieces = np.bincount(word[candidate], minlength=int(starts.sum()))
    hit = np.bincount(word[candidate], weights=predicted[candidate], minlength=int(starts.sum())).astype(int)
    return pieces, hit


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp"])
def test_whole_word_masking(corpus, vocab, name):
    _, plain = build(vocab, name, corpus, seq_len=128, masking="none")
    objective, words = build(vocab, name, corpus, seq_len=128, whole_word_mask=True)
    _, tokens = build(vocab, name, corpus, seq_len=128)
    pieces, hit = whole_word_coverage(plain.features, words.features, vocab)
    assert ((hit == 0) | (hit == pieces)).all(), "a word is predicted whole or not at all"
    assert (hit[hit > 0] > 1).sum() > 5000, "multi-piece words get masked"
    token_pieces, token_hit = whole_word_coverage(plain.features, tokens.features, vocab)
    split_words = (token_hit > 0) & (token_hit < token_pieces)
    assert split_words.sum() > 1000, "token masking splits words (so the check above has teeth)"

    mask = plain.features["input_mask"]
    rule = np.minimum(objective.max_predictions, np.maximum(1, np.round(mask.sum(axis=1) * 0.15)))
    counts = words.features["masked_lm_weights"].sum(axis=1)
    assert (counts <= rule).all()
    assert counts.sum() > 0.99 * rule.sum(), "skipping a word that does not fit rarely leaves the count short"
    predicted = words.features["masked_lm_weights"] == 1.0
    rows, cols = np.nonzero(predicted)[0], words.features["masked_lm_positions"][predicted]
    assert np.array_equal(words.features["masked_lm_ids"][predicted], plain.features["input_ids"][rows, cols])


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp", "mlm_sop"])
def test_deterministic(buckets, vocab, name):
    docs = buckets[0]
    options = {"seq_len": 128, "whole_word_mask": name == "mlm_nsp", "dupe_factor": 2}
    _, first = build(vocab, name, docs, seed=7, **options)
    _, again = build(vocab, name, docs, seed=7, **options)
    _, other = build(vocab, name, docs, seed=8, **options)
    assert first.features.keys() == again.features.keys()
    for key in first.features:
        assert np.array_equal(first.features[key], again.features[key]), key
    assert first.counters == again.counters
    assert first.size != other.size or not np.array_equal(first.features["input_ids"], other.features["input_ids"])


def test_options_defaults_and_schema(vocab):
    mlm = MaskedLM.from_options({"seq_len": None, "masking": None}, vocab)
    assert mlm.params() == {
        "seq_len": 512,
        "max_predictions": 76,
        "masked_lm_prob": 0.15,
        "short_seq_prob": 0.1,
        "dupe_factor": 1,
        "whole_word_mask": False,
        "masking": "static",
    }
    assert mlm.uses_sentences
    assert [(f.name, f.length, f.dtype) for f in mlm.schema.features] == [
        ("input_ids", 512, "int"),
        ("input_mask", 512, "int"),
        ("segment_ids", 512, "int"),
        ("masked_lm_positions", 76, "int"),
        ("masked_lm_ids", 76, "int"),
        ("masked_lm_weights", 76, "float"),
    ]
    assert mlm.schema["input_ids"].counts_tokens
    nsp = MaskedLMNextSentence.from_options({"seq_len": 128, "masking": "none"}, vocab)
    assert nsp.schema.names == ["input_ids", "input_mask", "segment_ids", "next_sentence_labels"]
    assert nsp.schema["next_sentence_labels"].length == 1
    assert MaskedLMSentenceOrder.from_options({"seq_len": 128}, vocab).params()["max_predictions"] == 19


@pytest.mark.parametrize(
    "name, options, flag",
    [
        ("mlm", {"seq_len": 3}, "--seq-len"),
        ("mlm_nsp", {"seq_len": 4}, "--seq-len"),
        ("mlm", {"seq_len": 128, "max_predictions": 127}, "--max-predictions"),
        ("mlm_sop", {"seq_len": 128, "max_predictions": 126}, "--max-predictions"),
        ("mlm", {"max_predictions": 0}, "--max-predictions"),
        ("mlm", {"seq_len": 8, "masked_lm_prob": 0.1}, "--max-predictions"),
        ("mlm", {"masked_lm_prob": 1.5}, "--masked-lm-prob"),
        ("mlm_nsp", {"masked_lm_prob": -0.1}, "--masked-lm-prob"),
        ("mlm_sop", {"short_seq_prob": 2.0}, "--short-seq-prob"),
        ("mlm", {"dupe_factor": 0}, "--dupe-factor"),
        ("mlm", {"masking": "dynamic"}, "--masking"),
        ("mlm", {"masking": "none", "dupe_factor": 2, "short_seq_prob": 0.0}, "--dupe-factor"),
    ],
)
def test_config_errors_name_the_flag(vocab, name, options, flag):
    with pytest.raises(ConfigError, match=flag):
        OBJECTIVES[name].from_options(options, vocab)


def test_summary(corpus, vocab):
    objective, examples = build(vocab, "mlm_nsp", corpus[:500], seq_len=128, dupe_factor=2)
    summary = objective.summarize(examples.counters)
    labels = examples.features["next_sentence_labels"]
    assert summary["next_sentence_label_1_share"] == labels.mean()
    real = examples.features["input_mask"].sum()
    assert summary["masked_fraction"] == examples.features["masked_lm_weights"].sum() / real
    assert examples.counters["next_sentence_label_1"] == labels.sum()
    assert MaskedLM.from_options({}, vocab).summarize({}) == {}


def bert_truncate_seq_pair(length_a: int, length_b: int, max_num_tokens: int) -> tuple[int, int]:
    """Tokens google-research/bert's `truncate_seq_pair` (master) removes from A and B, its loop ported as is."""
    cut_a = cut_b = 0
    while length_a + length_b > max_num_tokens:
        if length_a > length_b:
            length_a, cut_a = length_a - 1, cut_a + 1
        else:
            length_b, cut_b = length_b - 1, cut_b + 1
    return cut_a, cut_b


def test_truncation_matches_berts_loop_and_trims_b_on_a_tie():
    rng = np.random.default_rng(4)
    length_a, length_b = rng.integers(1, 300, size=(2, 5000))
    max_tokens = rng.integers(2, 300, size=5000)
    expected = np.array([bert_truncate_seq_pair(*t) for t in zip(length_a.tolist(), length_b.tolist(), max_tokens.tolist())])
    cut_a, cut_b = np.array([truncated_pair_lengths(a, b, m) for a, b, m in zip(length_a, length_b, max_tokens)]).T
    assert np.array_equal(cut_a, expected[:, 0]) and np.array_equal(cut_b, expected[:, 1])
    assert truncated_pair_lengths(np.array([5]), np.array([5]), 9) == (0, 1)


def unmasked(features) -> np.ndarray:
    """The rows before masking: each prediction's original id put back at its position."""
    ids = features["input_ids"].copy()
    predicted = features["masked_lm_weights"] == 1.0
    ids[np.nonzero(predicted)[0], features["masked_lm_positions"][predicted]] = features["masked_lm_ids"][predicted]
    return ids


@pytest.mark.parametrize("name", ["mlm", "mlm_nsp", "mlm_sop"])
def test_dupe_factor_copies_redraw_instances_and_masks(corpus, vocab, name):
    """As BERT's create_instances_from_document once per copy: each copy has its own instances; copy 0 is the k = 1 build."""
    docs = corpus[:1000]
    _, once = build(vocab, name, docs, seq_len=128)
    _, thrice = build(vocab, name, docs, seq_len=128, dupe_factor=3)
    _, plain = build(vocab, name, docs, seq_len=128, dupe_factor=3, masking="none")
    n = once.size
    for feature in once.features:
        assert np.array_equal(thrice.features[feature][:n], once.features[feature]), "copy 0 does not depend on k"
    rows = unmasked(thrice.features)
    assert np.array_equal(rows, plain.features["input_ids"]), "--masking none writes the instances static masks"
    check_predictions(plain.features, thrice.features, vocab, 0.15, 19)
    assert thrice.counters["instances"] == thrice.size
    _, twice = build(vocab, name, docs, seq_len=128, dupe_factor=2)
    m = twice.size
    for feature in twice.features:
        assert np.array_equal(thrice.features[feature][:m], twice.features[feature]), "copies are made copy-major"
    lengths = plain.features["input_mask"].sum(axis=1)
    copies = [{row[:length].tobytes() for row, length in zip(rows[a:b], lengths[a:b])} for a, b in ((0, n), (n, m), (m, None))]
    for c in (1, 2):
        assert len(copies[c] & copies[0]) < 0.3 * len(copies[0]), f"copy {c} re-draws the instances"
    if name != "mlm":
        labels = plain.features["next_sentence_labels"][:, 0]
        assert abs(labels.mean() - 0.5) < 0.03


def test_mlm_short_target_is_rough_and_cuts_only_sentences_longer_than_a_row(corpus, vocab):
    """As BERT: a short row takes whole sentences until its target is reached; only the row length is a hard limit."""
    seq_len = 128
    _, plain = build(vocab, "mlm", corpus, seq_len=seq_len, short_seq_prob=1.0, masking="none")
    f = plain.features
    lengths = f["input_mask"].sum(axis=1)
    check_mlm_stream(f["input_ids"], lengths, corpus, vocab)
    longer_than_a_row = sum(len(s) > seq_len - 2 for doc in corpus for s in doc)
    assert plain.counters["sentences_split"] == longer_than_a_row
    targets = np.random.default_rng(0).integers(2, seq_len - 1, size=plain.size)
    assert lengths.mean() - 2 > targets.mean(), "a row reaches its target, so rows run longer than the targets"


def test_masked_lm_padding_is_the_pad_id(corpus, vocab):
    pad7 = dataclasses.replace(vocab, pad=7)
    _, plain = build(vocab, "mlm", corpus[:200], seq_len=64, masking="none")
    out = mask_tokens(plain.features["input_ids"], plain.features["input_mask"], np.random.default_rng(0), pad7, 0.15, 20)
    padding = out["masked_lm_weights"] == 0.0
    assert padding.sum() > 100
    assert (out["masked_lm_ids"][padding] == 7).all() and (out["masked_lm_positions"][padding] == 7).all()


def test_one_sentence_documents_still_serve_as_random_next(corpus, vocab):
    multi = [doc for doc in corpus[:400] if len(doc) > 1]
    single = [[doc[0]] for doc in corpus[400:800]]
    _, nsp = build(vocab, "mlm_nsp", multi + single, seq_len=128, masking="none")
    assert nsp.counters["single_sentence_documents_skipped"] >= len(single)
    source = Source(single)
    lengths = nsp.features["input_mask"].sum(axis=1)
    random_b = [split_pair(row, n, vocab.sep)[1] for row, n, label in zip(nsp.features["input_ids"], lengths, nsp.features["next_sentence_labels"][:, 0]) if label]
    from_single = sum(bool(source.find(b)) for b in random_b)
    assert from_single > 0.3 * len(random_b) * len(single) / (len(multi) + len(single))
