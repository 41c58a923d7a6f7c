"""BERT pre-training examples: masked LM alone (`mlm`), with next-sentence
prediction (`mlm_nsp`, BERT) or with sentence-order prediction (`mlm_sop`,
ALBERT) (SPEC §2).

Instances follow BERT's `create_pretraining_data.py` with the SPEC's changes.
Masking is `mask_tokens`, public so that a trainer can mask on the fly the
rows written with `--masking none`; those rows are exactly the instances that
`--masking static` masks with the same seed.

Choices where SPEC and BERT leave room:

- `mlm` packs whole sentences contiguously (RoBERTa FULL-SENTENCES) and still
  applies `short_seq_prob`: each instance gets BERT's target length (the full
  length or, with that probability, a random length in [2, max]) for BERT's
  reason, that fine-tuning inputs are often short. As in BERT the target is
  rough: whole sentences are taken until it is reached, the one that reaches
  it included when it fits in the row. `--short-seq-prob 0` gives RoBERTa's
  packing exactly.
- `mlm` is lossless: a sentence that does not fit in the space left starts the
  next instance, and only one longer than a whole row is cut, running on over
  as many instances as it needs.
- Pairs draw one target length per document, as BERT does.
- Balance: a chunk takes at least two sentences whenever its document has
  them. A lone last sentence (left over at a document's end) reaches back to
  the sentence before it for a true next pair, so that sentence appears in two
  pairs; with a random next it is A on its own. A one-sentence document has no
  true next, so it makes no pair of its own (`single_sentence_documents_skipped`
  counts it; it can still be drawn as another document's random next): a
  random-next pair made from it on heads would have no label-0 pair on tails,
  and free text with many one-line documents drifted to 60% label 1. BERT
  instead forces a random next for every one-sentence chunk, which tilts the
  labels the same way.
- A bucket with a single document has no other document to draw a random next
  from: the true continuation is used and `nsp_no_other_document` counts it.
- `truncate_seq_pair` is computed in closed form: the longer side loses a token
  (B on a tie, as BERT's master) until the pair fits, and each lost token comes
  from the front or the back with probability 1/2.
- Whole words: a word starts where the encoding's pre-tokenizer word starts
  (a `tokenizers` file: the documents carry `word_starts`), else at a piece
  with `Vocab.starts_word` (SentencePiece's `▁`), or right after
  `[CLS]`/`[SEP]`; `[CLS]`/`[SEP]` are never part of a word.
- `dupe_factor` k: as BERT, which calls `create_instances_from_document` once
  per copy, each copy builds its own instances (target lengths, A|B splits,
  random nexts, truncation; for `mlm` the short rows) and masks them, from the
  c-th child of the bucket's generator; rows are copy-major (all rows of copy
  0, then of copy 1 …), so copy 0 does not depend on k, and `--masking none`
  writes exactly the rows `--masking static` masks. Counters add up over the
  copies. With `--masking none` copies differ only in their instances, so it
  is refused where they would be identical: `mlm` with `short_seq_prob` 0.
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
from transforms.vocab import Vocab

DEFAULT_SEQ_LEN = 512
DEFAULT_MASKED_LM_PROB = 0.15
DEFAULT_SHORT_SEQ_PROB = 0.1
MASKING_MODES = ("static", "none")
MASK_SHARE = 0.8
RANDOM_SHARE = 0.1
MIN_TARGET_LENGTH = 2
NOT_ELIGIBLE = np.iinfo(np.uint64).max


def num_to_predict(lengths: np.ndarray, masked_lm_prob: float, max_predictions: int) -> np.ndarray:
    """BERT's count per row, `lengths` counting [CLS]/[SEP]; `np.round` halves to even like Python's `round`."""
    wanted = np.maximum(1, np.round(np.asarray(lengths) * masked_lm_prob)).astype(np.int64)
    return np.minimum(wanted, max_predictions)


def mask_tokens(
    input_ids: np.ndarray,
    input_mask: np.ndarray,
    rng: np.random.Generator,
    vocab: Vocab,
    masked_lm_prob: float,
    max_predictions: int,
    whole_word_mask: bool = False,
    word_starts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """BERT's masked-LM predictions for a batch of rows [N, L].

    Whole words start where `word_starts` [N, L] says (from the encoding),
    else at ids `vocab.starts_word` marks.

    Returns the masked `input_ids` [N, L] and `masked_lm_positions`,
    `masked_lm_ids`, `masked_lm_weights` [N, max_predictions] (positions
    ascending; positions and ids padded with `vocab.pad`, weights with 0.0). `input_mask` is 1 on the real
    tokens, which come first in each row (BERT's layout). Candidates are the
    real tokens other than [CLS]/[SEP]; each chosen one becomes [MASK] (80%),
    a random ordinary id (10%) or stays (10%).

    Rows are processed in groups of similar length (up to the next power of
    two), so the work follows the real tokens, not the padding.
    """
    input_ids = np.asarray(input_ids, dtype=np.int32)
    num_rows, length = input_ids.shape
    if max_predictions > length:
        raise ValueError(f"max_predictions ({max_predictions}) exceeds the row length ({length})")
    real_length = np.count_nonzero(input_mask, axis=1)
    budget = num_to_predict(real_length, masked_lm_prob, max_predictions)
    group_width = np.minimum(length, 1 << np.ceil(np.log2(np.maximum(real_length, 1))).astype(np.int64))

    chosen = np.empty((num_rows, max_predictions), dtype=np.int64)
    for width in np.unique(group_width).tolist():
        rows = np.flatnonzero(group_width == width)
        ids = input_ids[rows, :width]
        candidate = (np.arange(width) < real_length[rows, None]) & (ids != vocab.cls) & (ids != vocab.sep)
        if whole_word_mask:
            starts = vocab.starts_word[ids] if word_starts is None else word_starts[rows, :width]
            word_start = _word_starts(candidate, starts)
            picked = _choose_whole_words(candidate, word_start, budget[rows], max_predictions, rng)
        else:
            picked = _choose_tokens(candidate, budget[rows], max_predictions, rng)
        chosen[rows] = np.where(picked < width, picked, length)

    predicted = chosen < length
    positions = np.where(predicted, chosen, 0).astype(np.int32)
    original = np.take_along_axis(input_ids, positions, axis=1)
    decision = rng.random((num_rows, max_predictions))
    replacement = np.where(
        decision < MASK_SHARE,
        vocab.mask,
        np.where(
            decision < MASK_SHARE + RANDOM_SHARE,
            vocab.ordinary_ids[rng.integers(vocab.ordinary_ids.size, size=(num_rows, max_predictions))],
            original,
        ),
    )
    masked = input_ids.copy()
    masked[np.nonzero(predicted)[0], positions[predicted]] = replacement[predicted]
    return {
        "input_ids": masked,
        "masked_lm_positions": np.where(predicted, positions, vocab.pad).astype(np.int32),
        "masked_lm_ids": np.where(predicted, original, vocab.pad).astype(np.int32),
        "masked_lm_weights": predicted.astype(np.float32),
    }


def _random_keys(eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sort key per position [N, L]: random high bits, the position in the low bits, all ones where not eligible.

    Sorting a row's keys shuffles its eligible positions uniformly and the
    low bits give them back. The random part has 63 bits less the
    position's; a tie in it (about once in 10^10 rows of 512) is broken by
    position.
    """
    num_rows, length = eligible.shape
    bits = _position_bits(length)
    keys = rng.integers(0, 1 << (63 - bits), size=(num_rows, length), dtype=np.uint64) << np.uint64(bits)
    keys |= np.arange(length, dtype=np.uint64)
    keys[~eligible] = NOT_ELIGIBLE
    return keys


def _position_bits(length: int) -> int:
    return max(1, (length - 1).bit_length())


def _first_in_order(keys: np.ndarray, columns: int) -> np.ndarray:
    """The positions of each row's `columns` smallest keys, in key order [N, columns]; L where a row has no more."""
    length = keys.shape[1]
    if columns < length:
        keys = np.partition(keys, columns - 1, axis=1)[:, :columns]
    keys = np.sort(keys, axis=1)
    positions = keys & np.uint64((1 << _position_bits(length)) - 1)
    return np.where(keys == NOT_ELIGIBLE, length, positions).astype(np.int64)


def _choose_tokens(
    candidate: np.ndarray, budget: np.ndarray, max_predictions: int, rng: np.random.Generator
) -> np.ndarray:
    """The predicted positions [n, max_predictions], ascending, L past the last: `budget` random candidates a row."""
    num_rows, length = candidate.shape
    columns = min(max_predictions, length)
    first = _first_in_order(_random_keys(candidate, rng), columns)
    chosen = np.full((num_rows, max_predictions), length, dtype=np.int64)
    chosen[:, :columns] = np.sort(np.where(np.arange(columns) < budget[:, None], first, length), axis=1)
    return chosen


def _word_starts(candidate: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Where whole words start: a candidate that starts a word, or the first candidate after [CLS]/[SEP]."""
    after_candidate = np.zeros_like(candidate)
    after_candidate[:, 1:] = candidate[:, :-1]
    return candidate & (starts | ~after_candidate)


def _choose_whole_words(
    candidate: np.ndarray, word_start: np.ndarray, budget: np.ndarray, max_predictions: int, rng: np.random.Generator
) -> np.ndarray:
    """The predicted positions [n, max_predictions], ascending, L past the last: BERT's whole-word greedy.

    Only the first 2 × max_predictions words of each row's random order are
    ranked; the few rows with budget left after them and more words are
    done again with their whole order.
    """
    num_rows, length = candidate.shape
    columns = np.arange(length, dtype=np.int32)
    word_end = np.where(word_start | ~candidate, columns, length)
    word_end = np.minimum.accumulate(word_end[:, ::-1], axis=1)[:, ::-1]
    word_length = np.zeros((num_rows, length + 1), dtype=np.int32)
    word_length[:, : length - 1] = word_end[:, 1:] - columns[:-1]
    word_length[:, length - 1] = 1

    keys = _random_keys(word_start, rng)
    window = min(length, 2 * max_predictions)
    order = _first_in_order(keys, window)
    taken, left = _take_words(np.take_along_axis(word_length, order, axis=1), budget)
    word_row, word_column = np.nonzero(taken)[0], order[taken]
    unfinished = np.flatnonzero((left > 0) & (word_start.sum(axis=1) > window))
    if unfinished.size:
        order = _first_in_order(keys[unfinished], length)
        taken, _ = _take_words(np.take_along_axis(word_length[unfinished], order, axis=1), budget[unfinished])
        done = ~np.isin(word_row, unfinished)
        word_row = np.concatenate([word_row[done], unfinished[np.nonzero(taken)[0]]])
        word_column = np.concatenate([word_column[done], order[taken]])

    word_first = word_row * length + word_column
    flat = np.sort(gather_ranges(word_first, word_first + word_length[word_row, word_column]))
    row, column = np.divmod(flat, length)
    per_row = np.bincount(row, minlength=num_rows)
    chosen = np.full((num_rows, max_predictions), length, dtype=np.int64)
    chosen[row, np.arange(flat.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)] = column
    return chosen


def _take_words(length_in_order: np.ndarray, budget: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BERT's greedy over words in order (lengths [n, C], 0 past a row's last word): which are taken, budget left.

    A word is taken when it still fits in its row's budget, else skipped (a
    later, shorter word may still fit). Each round takes, per row, the
    longest run of words that fits and skips the word after it; words longer
    than the remaining budget drop out and only rows with words left go on,
    so a few small rounds finish the batch.
    """
    taken = np.zeros(length_in_order.shape, dtype=bool)
    columns = np.arange(length_in_order.shape[1])
    rows = np.arange(length_in_order.shape[0])
    alive = length_in_order > 0
    left = budget.astype(np.int32)
    budget_left = left.copy()
    while True:
        alive &= length_in_order <= left[:, None]
        going = alive.any(axis=1)
        if not going.all():
            rows, alive, left, length_in_order = rows[going], alive[going], left[going], length_in_order[going]
        if not rows.size:
            break
        take = alive & (np.cumsum(np.where(alive, length_in_order, 0), axis=1, dtype=np.int32) <= left[:, None])
        skipped = alive & ~take
        first_skipped = np.where(skipped.any(axis=1), skipped.argmax(axis=1), columns.size)
        taken[rows] |= take
        alive &= ~take & (columns > first_skipped[:, None])
        left -= np.where(take, length_in_order, 0).sum(axis=1, dtype=np.int32)
        budget_left[rows] = left
    return taken, budget_left


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
