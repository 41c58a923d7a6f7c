"""BERT's masked-LM masking: which positions of a row to predict and what replaces them (SPEC §2).

Public so that a trainer masks on the fly, with the same function and seed,
the rows a build writes with `--masking none` (`readers.torch` does). Each
chosen position becomes [MASK] (`MASK_SHARE`), a random ordinary id
(`RANDOM_SHARE`) or stays.
"""

from __future__ import annotations

import numpy as np

from transforms.documents import gather_ranges
from transforms.vocab import Vocab

MASK_SHARE = 0.8
RANDOM_SHARE = 0.1
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

    Whole words start where `word_starts` [N, L] says (from the encoding:
    a `tokenizers` file's word_ids), else at ids `vocab.starts_word` marks.

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
