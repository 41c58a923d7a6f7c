"""BERT pre-training examples: masked LM alone (`mlm`), with next-sentence
prediction (`mlm_nsp`, BERT) or with sentence-order prediction (`mlm_sop`,
ALBERT) (SPEC §2).

Instances follow BERT's `create_pretraining_data.py` with the SPEC's changes
(the choices where SPEC and BERT leave room: docs/objectives/bert.md). Masking
is `bert_masking.mask_tokens`; the rows written with `--masking none` are
exactly the instances that `--masking static` masks with the same seed.
"""

from __future__ import annotations

import abc
import bisect
import dataclasses
from collections import Counter
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from schemas import FLOAT, Feature, Schema
from transforms.documents import DocBatch, gather_ranges
from transforms.objectives.base import Examples, Objective, option, require
from transforms.objectives.bert_masking import mask_tokens
from transforms.vocab import Vocab

DEFAULT_SEQ_LEN = 512
DEFAULT_MASKED_LM_PROB = 0.15
DEFAULT_SHORT_SEQ_PROB = 0.1
MASKING_MODES = ("static", "none")
MIN_TARGET_LENGTH = 2


def _target_lengths(rng: np.random.Generator, count: int, max_tokens: int, short_seq_prob: float) -> np.ndarray:
    """BERT's target lengths: `max_tokens`, or with `short_seq_prob` a uniform length in [2, max_tokens]."""
    short = rng.random(count) < short_seq_prob
    return np.where(short, rng.integers(MIN_TARGET_LENGTH, max_tokens + 1, size=count), max_tokens)


def _target_stream(rng: np.random.Generator, block: int, max_tokens: int, short_seq_prob: float) -> Iterator[int]:
    """Target lengths one at a time, drawn `block` at a time (the number needed is known only at the end)."""
    while True:
        yield from _target_lengths(rng, block, max_tokens, short_seq_prob).tolist()


@dataclasses.dataclass
class Instances:
    """Unmasked rows [N, L] (and [N, 1] labels for pairs) with the counters of their making."""

    features: dict[str, np.ndarray]
    counters: dict[str, int]


def pack_full_sentences(
    docs: DocBatch, vocab: Vocab, seq_len: int, short_seq_prob: float, rng: np.random.Generator
) -> Instances:
    """RoBERTa FULL-SENTENCES: `[CLS] sentences [SEP]`, with a `[SEP]` between documents inside a row.

    The documents become one stream with a `[SEP]` before every document but
    the first; each row is a slice of it: whole sentences until the row's
    target length is reached, the sentence that reaches it included when it
    fits in the row (a document's `[SEP]` is dropped when its first sentence
    starts a row), or the next row-length piece of a sentence longer than a
    row. The loop runs once per row (its end found by bisection); the rows are
    then gathered with numpy.
    """
    num_sentences = docs.sentence_offsets.size - 1
    doc_of_sentence = np.repeat(np.arange(docs.num_docs), np.diff(docs.doc_offsets))
    token_start = docs.sentence_offsets[:-1] + doc_of_sentence
    starts_document = np.zeros(num_sentences, dtype=bool)
    starts_document[docs.doc_offsets[1:-1]] = True
    unit_start = np.append(token_start - starts_document, docs.num_tokens + max(docs.num_docs - 1, 0))
    stream = np.full(int(unit_start[-1]), vocab.sep, dtype=np.int32)
    stream[gather_ranges(token_start, token_start + np.diff(docs.sentence_offsets))] = docs.tokens

    units, sentence_starts = unit_start.tolist(), token_start.tolist() + [int(unit_start[-1])]
    max_tokens = seq_len - 2
    targets = _target_stream(rng, docs.num_docs + 1, max_tokens, short_seq_prob)
    slices: list[tuple[int, int]] = []
    position, sentence, sentences_split = 0, 0, 0
    while sentence < num_sentences:
        row_end = position + max_tokens
        reaches_target = bisect.bisect_left(units, position + next(targets), sentence + 1)
        end_sentence = min(reaches_target, bisect.bisect_right(units, row_end, sentence + 1) - 1)
        if end_sentence > sentence:
            slices.append((position, units[end_sentence]))
            sentence = end_sentence
            position = sentence_starts[sentence]
        else:
            sentences_split += position == sentence_starts[sentence]
            slices.append((position, row_end))
            position = row_end

    piece = np.array(slices, dtype=np.int64).reshape(-1, 2)
    num_rows = piece.shape[0]
    lengths = piece[:, 1] - piece[:, 0] + 2
    row_start = np.arange(num_rows, dtype=np.int64) * seq_len + 1
    input_ids = np.full((num_rows, seq_len), vocab.pad, dtype=np.int32)
    content = stream[gather_ranges(piece[:, 0], piece[:, 1])]
    input_ids.reshape(-1)[gather_ranges(row_start, row_start + lengths - 2)] = content
    input_ids[:, 0] = vocab.cls
    input_ids[np.arange(num_rows), lengths - 1] = vocab.sep
    input_mask = _below(lengths, seq_len)
    features = {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": np.zeros_like(input_ids)}
    if docs.word_starts is not None:
        stream_starts = np.ones(stream.shape[0], dtype=bool)
        stream_starts[gather_ranges(token_start, token_start + np.diff(docs.sentence_offsets))] = docs.word_starts
        features["word_starts"] = np.ones((num_rows, seq_len), dtype=bool)
        features["word_starts"].reshape(-1)[gather_ranges(row_start, row_start + lengths - 2)] = stream_starts[gather_ranges(piece[:, 0], piece[:, 1])]
    return Instances(features, {"sentences_split": sentences_split})


def _below(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    """int32 [N, seq_len]: 1 in the first `lengths[i]` columns of row i, written without a boolean temporary."""
    out = np.empty((lengths.shape[0], seq_len), dtype=np.int32)
    np.less(np.arange(seq_len), lengths[:, None], out=out, casting="unsafe")
    return out


def truncated_pair_lengths(
    length_a: np.ndarray, length_b: np.ndarray, max_tokens: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens `truncate_seq_pair` removes from A and from B, without its token-by-token loop.

    As BERT (master), a token goes from A only when A is strictly longer, else
    from B: the longer side loses tokens until both are equal, then they lose
    one each in turn, B first.
    """
    excess = np.maximum(length_a + length_b - max_tokens, 0)
    a_longer = length_a > length_b
    evening = np.minimum(excess, np.abs(length_a - length_b))
    alternating = excess - evening
    cut_a = np.where(a_longer, evening, 0) + alternating // 2
    cut_b = np.where(a_longer, 0, evening) + (alternating + 1) // 2
    return cut_a, cut_b


def sentence_pairs(
    docs: DocBatch, vocab: Vocab, seq_len: int, short_seq_prob: float, order_prediction: bool, rng: np.random.Generator
) -> Instances:
    """BERT's `[CLS] A [SEP] B [SEP]` pairs with NSP labels, or ALBERT's SOP labels when `order_prediction`.

    The loop runs once per chunk (its end found by bisection) and records
    sentence ranges; the random B sides, the truncation and the rows are
    computed for all pairs at once afterwards.
    """
    max_tokens = seq_len - 3
    offsets = docs.sentence_offsets.tolist()
    doc_offsets = docs.doc_offsets.tolist()
    num_docs, num_sentences = docs.num_docs, len(offsets) - 1
    targets = _target_lengths(rng, num_docs, max_tokens, short_seq_prob)
    target_list = targets.tolist()
    # One coin (random next, or swap) and one split point per chunk; a document has at most one chunk per sentence.
    coins = (rng.random(num_sentences) < 0.5).tolist()
    splits = rng.random(num_sentences).tolist()

    # (first sentence of A, first of B, end of B, label, document); a random B is empty until drawn.
    pairs: list[tuple[int, int, int, bool, int]] = []
    no_other_document = skipped = chunk = 0
    for d in range(num_docs):
        first, stop = doc_offsets[d], doc_offsets[d + 1]
        last, target = stop - 1, target_list[d]
        if last == first:
            skipped += 1
            continue
        start = first
        while start <= last:
            label, split = coins[chunk], splits[chunk]
            chunk += 1
            random_next = label and not order_prediction
            if random_next and num_docs == 1:
                no_other_document += 1
                random_next = label = False
            if start == last:
                if random_next:
                    pairs.append((last, stop, stop, True, d))
                else:
                    pairs.append((last - 1, last, stop, label, d))
                break
            end = bisect.bisect_left(offsets, offsets[start] + target, start + 2, stop)
            split_at = start + 1 + int(split * (end - start - 1))
            if random_next:
                pairs.append((start, split_at, split_at, True, d))
                start = split_at
            else:
                pairs.append((start, split_at, end, label, d))
                start = end

    table = np.array(pairs, dtype=np.int64).reshape(-1, 5)
    a_lo, b_lo, b_hi = (docs.sentence_offsets[table[:, i]] for i in range(3))
    a_hi = b_lo.copy()
    label = table[:, 3].astype(bool)
    if not order_prediction and label.any():
        doc = table[label, 4]
        b_lo[label], b_hi[label] = _random_next(docs, doc, targets[doc] - (a_hi - a_lo)[label], rng)
    if order_prediction:
        a_lo, b_lo = np.where(label, b_lo, a_lo), np.where(label, a_lo, b_lo)
        a_hi, b_hi = np.where(label, b_hi, a_hi), np.where(label, a_hi, b_hi)
    cut_a, cut_b = truncated_pair_lengths(a_hi - a_lo, b_hi - b_lo, max_tokens)
    front_a, front_b = rng.binomial(cut_a, 0.5), rng.binomial(cut_b, 0.5)
    a_lo, a_hi = a_lo + front_a, a_hi - (cut_a - front_a)
    b_lo, b_hi = b_lo + front_b, b_hi - (cut_b - front_b)

    num_rows = label.size
    length_a, length_b = a_hi - a_lo, b_hi - b_lo
    row_base = np.arange(num_rows, dtype=np.int64) * seq_len
    b_base = row_base + 2 + length_a
    input_ids = np.full((num_rows, seq_len), vocab.pad, dtype=np.int32)
    flat_ids = input_ids.reshape(-1)
    flat_ids[gather_ranges(row_base + 1, b_base - 1)] = docs.tokens[gather_ranges(a_lo, a_hi)]
    flat_ids[gather_ranges(b_base, b_base + length_b)] = docs.tokens[gather_ranges(b_lo, b_hi)]
    flat_ids[row_base] = vocab.cls
    flat_ids[b_base - 1] = vocab.sep
    flat_ids[b_base + length_b] = vocab.sep
    input_mask = _below(length_a + length_b + 3, seq_len)
    segment_ids = _below(length_a + 2, seq_len)
    np.subtract(input_mask, segment_ids, out=segment_ids)
    features = {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "next_sentence_labels": label.astype(np.int32)[:, None],
    }
    if docs.word_starts is not None:
        starts = np.ones((num_rows, seq_len), dtype=bool)
        flat_starts = starts.reshape(-1)
        flat_starts[gather_ranges(row_base + 1, b_base - 1)] = docs.word_starts[gather_ranges(a_lo, a_hi)]
        flat_starts[gather_ranges(b_base, b_base + length_b)] = docs.word_starts[gather_ranges(b_lo, b_hi)]
        features["word_starts"] = starts
    return Instances(
        features,
        {
            "next_sentence_label_1": int(label.sum()),
            "truncated_tokens": int(cut_a.sum() + cut_b.sum()),
            "nsp_no_other_document": no_other_document,
            "single_sentence_documents_skipped": skipped,
        },
    )


def _random_next(
    docs: DocBatch, doc: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Token range of each random B: from a random sentence of a random other document, whole
    sentences until `target` tokens are reached (at least one), as BERT."""
    other = (rng.random(doc.size) * (docs.num_docs - 1)).astype(np.int64)
    other += other >= doc
    first, stop = docs.doc_offsets[other], docs.doc_offsets[other + 1]
    start = first + (rng.random(doc.size) * (stop - first)).astype(np.int64)
    begin = docs.sentence_offsets[start]
    end = np.clip(np.searchsorted(docs.sentence_offsets, begin + target, side="left"), start + 1, stop)
    return begin, docs.sentence_offsets[end]


class _BertObjective(Objective):
    """Options, schema and the build shared by the three BERT objectives."""

    uses_sentences = True
    pairs: ClassVar[bool]

    def __init__(
        self,
        vocab: Vocab,
        seq_len: int = DEFAULT_SEQ_LEN,
        max_predictions: int | None = None,
        masked_lm_prob: float = DEFAULT_MASKED_LM_PROB,
        short_seq_prob: float = DEFAULT_SHORT_SEQ_PROB,
        dupe_factor: int = 1,
        whole_word_mask: bool = False,
        masking: str = "static",
    ):
        super().__init__(vocab)
        minimum = self.special_tokens + MIN_TARGET_LENGTH
        require(seq_len >= minimum, f"--seq-len must be at least {minimum} for {self.name}, got {seq_len}")
        require(0.0 <= masked_lm_prob <= 1.0, f"--masked-lm-prob must be between 0 and 1, got {masked_lm_prob}")
        require(0.0 <= short_seq_prob <= 1.0, f"--short-seq-prob must be between 0 and 1, got {short_seq_prob}")
        maskable = seq_len - self.special_tokens
        if max_predictions is None:
            max_predictions = int(seq_len * masked_lm_prob)
            require(
                max_predictions >= 1,
                f"--max-predictions defaults to seq_len x masked_lm_prob = {max_predictions}; "
                "give --max-predictions of at least 1",
            )
        require(
            1 <= max_predictions <= maskable,
            f"--max-predictions must be between 1 and {maskable} (the maskable positions of a {seq_len}-token "
            f"{self.name} row), got {max_predictions}",
        )
        require(dupe_factor >= 1, f"--dupe-factor must be at least 1, got {dupe_factor}")
        require(masking in MASKING_MODES, f"--masking must be one of {', '.join(MASKING_MODES)}, got {masking!r}")
        require(
            masking == "static" or dupe_factor == 1 or self.pairs or short_seq_prob > 0,
            f"--dupe-factor {dupe_factor} with --masking none and --short-seq-prob 0: {self.name} would pack "
            "every copy the same, so the unmasked copies would be identical; use --dupe-factor 1",
        )
        self.seq_len = seq_len
        self.max_predictions = max_predictions
        self.masked_lm_prob = masked_lm_prob
        self.short_seq_prob = short_seq_prob
        self.dupe_factor = dupe_factor
        self.whole_word_mask = bool(whole_word_mask)
        self.masking = masking

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "_BertObjective":
        return cls(
            vocab,
            seq_len=option(options, "seq_len", DEFAULT_SEQ_LEN),
            max_predictions=options.get("max_predictions"),
            masked_lm_prob=option(options, "masked_lm_prob", DEFAULT_MASKED_LM_PROB),
            short_seq_prob=option(options, "short_seq_prob", DEFAULT_SHORT_SEQ_PROB),
            dupe_factor=option(options, "dupe_factor", 1),
            whole_word_mask=option(options, "whole_word_mask", False),
            masking=option(options, "masking", "static"),
        )

    @property
    def special_tokens(self) -> int:
        """[CLS] and [SEP], plus the second [SEP] of a pair."""
        return 3 if self.pairs else 2

    @property
    def schema(self) -> Schema:
        L, P = self.seq_len, self.max_predictions
        features = [Feature("input_ids", L, counts_tokens=True), Feature("input_mask", L), Feature("segment_ids", L)]
        if self.masking == "static":
            features += [
                Feature("masked_lm_positions", P),
                Feature("masked_lm_ids", P),
                Feature("masked_lm_weights", P, FLOAT),
            ]
        if self.pairs:
            features.append(Feature("next_sentence_labels", 1))
        return Schema(self.name, tuple(features))

    def params(self) -> dict[str, Any]:
        return {
            "seq_len": self.seq_len,
            "max_predictions": self.max_predictions,
            "masked_lm_prob": self.masked_lm_prob,
            "short_seq_prob": self.short_seq_prob,
            "dupe_factor": self.dupe_factor,
            "whole_word_mask": self.whole_word_mask,
            "masking": self.masking,
        }

    @property
    def needs_word_starts(self) -> bool:
        return self.whole_word_mask

    @abc.abstractmethod
    def instances(self, docs: DocBatch, rng: np.random.Generator) -> Instances:
        """The unmasked rows of a bucket."""

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        """`dupe_factor` copies, copy-major; copy c makes its instances and masks from the c-th child of `rng`."""
        copies = []
        counters: Counter[str] = Counter()
        for copy_rng in rng.spawn(self.dupe_factor):
            instance_rng, mask_rng = copy_rng.spawn(2)
            made = self.instances(docs, instance_rng)
            features = made.features
            counters.update(
                {"instances": features["input_ids"].shape[0], "instance_tokens": int(features["input_mask"].sum()), **made.counters}
            )
            if self.masking == "static":
                masked = mask_tokens(
                    features["input_ids"],
                    features["input_mask"],
                    mask_rng,
                    self.vocab,
                    self.masked_lm_prob,
                    self.max_predictions,
                    self.whole_word_mask,
                    features.get("word_starts"),
                )
                features = {**features, **masked}
                counters["masked_positions"] += int(masked["masked_lm_weights"].sum())
            copies.append(features)
        features = {
            name: np.concatenate([copy[name] for copy in copies]) if len(copies) > 1 else copies[0][name]
            for name in self.schema.names
        }
        return Examples(features, dict(counters))

    def summarize(self, counters: Mapping[str, int]) -> dict[str, float]:
        summary = {}
        instances = counters.get("instances", 0)
        tokens = counters.get("instance_tokens", 0)
        if self.masking == "static" and tokens:
            summary["masked_fraction"] = counters.get("masked_positions", 0) / tokens
        if self.pairs and instances:
            summary["next_sentence_label_1_share"] = counters.get("next_sentence_label_1", 0) / instances
        return summary


class MaskedLM(_BertObjective):
    """BERT's masked LM on RoBERTa FULL-SENTENCES rows."""

    name = "mlm"
    pairs = False

    def instances(self, docs: DocBatch, rng: np.random.Generator) -> Instances:
        return pack_full_sentences(docs, self.vocab, self.seq_len, self.short_seq_prob, rng)


class MaskedLMNextSentence(_BertObjective):
    """BERT: masked LM plus next-sentence prediction (label 1 = B from another document)."""

    name = "mlm_nsp"
    pairs = True

    def instances(self, docs: DocBatch, rng: np.random.Generator) -> Instances:
        return sentence_pairs(docs, self.vocab, self.seq_len, self.short_seq_prob, False, rng)


class MaskedLMSentenceOrder(_BertObjective):
    """ALBERT: masked LM plus sentence-order prediction (label 1 = A and B swapped)."""

    name = "mlm_sop"
    pairs = True

    def instances(self, docs: DocBatch, rng: np.random.Generator) -> Instances:
        return sentence_pairs(docs, self.vocab, self.seq_len, self.short_seq_prob, True, rng)
