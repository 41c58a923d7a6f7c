"""T5 span corruption and prefix LM (SPEC §2 span_corruption, prefix_lm), and the numpy pieces UL2 reuses.

The noise mask, the sentinel layout and the length helper follow
`t5/data/preprocessors.py` (`random_spans_noise_mask`,
`noise_span_to_unique_sentinel`, `random_spans_helper`, `random_prefix_noise_mask`),
vectorised over a batch of equal-length pieces: every full piece of a bucket
has the same length, so one call noises all of them.

Choices where SPEC and T5 leave room:
- Noise counts round half to even in float32, as T5's mask (`tf.round` of
  float32 values): float64 rounds some lengths otherwise (n = 190 at density
  0.15 is 28.500002 in float32, 29 noise tokens, and 28.4999… in float64).
  The helper counts with the mask's own clamped float32 rules
  (`noise_counts`); T5's helper rounds in float64 without the clamps, which
  gives the same figures for all of T5's and UL2's settings at inputs length
  512 and would otherwise under-count a span at short lengths.
- Sentinels number the noise spans of a piece in order, `<extra_id_0>` first,
  in both inputs and targets, so they pair one to one even when the mask is
  rolled (T5 numbers the targets' non-noise spans, which pairs only unrolled).
- `random_roll` rotates the mask by an offset uniform in [0, n), as seqio
  does. A noise span that wraps round becomes two spans, so rolled pieces are
  sized for one more span: one more sentinel in inputs and in targets.
- Documents of a bucket are concatenated with no separator, as T5, and cut
  into consecutive pieces; pieces never cross buckets (a bucket is the unit of
  determinism). The bucket's last piece is noised at its own length; a last
  piece of one token cannot hold a noise and a non-noise token, so it is
  dropped and counted (`short_pieces_dropped`, `short_piece_tokens_dropped`).
- Encoder-decoder prefix LM pieces have `inputs_length − 1` tokens (T5's
  `split_tokens_to_inputs_length`): prefix + eos and rest + eos both fit.
  Decoder-only, as T5's decoder-only path and `clm`: every document of the
  stream ends with eos (`clm.with_eos`), no eos is added where a piece is cut,
  and pieces have `inputs_length` tokens, so every row but a bucket's last is
  full; the eos tokens count as raw tokens. For the prefix LM the predicted
  suffix counts as one noise span, UL2's view of the S-denoiser, so every
  objective reports the same counters.
- Options not used by an objective (e.g. `--noise-density` for prefix_lm,
  `--targets-length` for the decoder-only layout, which has no targets) are
  ignored, since the options dict is shared by all objectives.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from schemas import Feature, Schema
from transforms.documents import DocBatch
from transforms.errors import ConfigError
from transforms.objectives.base import Examples, Objective, option, require
from transforms.objectives.clm import with_eos
from transforms.vocab import Vocab

DEFAULT_INPUTS_LENGTH = 512
DEFAULT_NOISE_DENSITY = 0.15
DEFAULT_MEAN_NOISE_SPAN_LENGTH = 3.0
PREFIX_LAYOUTS = ("encoder_decoder", "decoder_only")
MIN_PIECE_LENGTH = 2

RowMaker = Callable[[np.ndarray, np.random.Generator], tuple[dict[str, np.ndarray], dict[str, int]]]
"""Equal-length pieces [B, n] -> (feature rows [B, length] by name, counters)."""


class PieceSizes(NamedTuple):
    """How one way of noising fills the feature lengths."""

    raw_length: int  # tokens per piece
    targets_length: int  # longest targets a piece can give, eos included
    sentinels: int  # most noise spans a piece can have


def noise_counts(lengths, noise_density: float, mean_noise_span_length: float) -> tuple[np.ndarray, np.ndarray]:
    """(noise tokens, noise spans) for pieces of `lengths` >= 2 tokens (SPEC §2 span_corruption).

    num_noise = clamp(round(n × density), 1, n − 1); num_spans = max(1, round(num_noise / mean_span)),
    both in float32 as T5's `random_spans_noise_mask` computes them.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    noise = np.rint(lengths.astype(np.float32) * np.float32(noise_density))
    num_noise = np.clip(noise, 1, lengths - 1).astype(np.int64)
    num_spans = np.maximum(1, np.rint(num_noise.astype(np.float32) / np.float32(mean_noise_span_length))).astype(np.int64)
    return num_noise, num_spans


def encoded_lengths(
    lengths, noise_density: float, mean_noise_span_length: float, reserved_inputs_tokens: int = 0, extra_spans: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs length, targets length), eos included, of span-corrupted pieces of `lengths` tokens.

    `reserved_inputs_tokens` lead the inputs (a UL2 mode token); `extra_spans`
    more spans than the counting rule may occur (one when the mask is rolled).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    num_noise, num_spans = noise_counts(lengths, noise_density, mean_noise_span_length)
    num_sentinels = num_spans + extra_spans
    return reserved_inputs_tokens + lengths - num_noise + num_sentinels + 1, num_noise + num_sentinels + 1


def random_spans_helper(
    inputs_length: int,
    noise_density: float,
    mean_noise_span_length: float,
    reserved_inputs_tokens: int = 0,
    extra_spans: int = 0,
) -> tuple[int, int]:
    """T5's `random_spans_helper`: (raw tokens per piece, targets length) so that inputs fill `inputs_length`.

    The raw length is the longest whose inputs fit; the encoded lengths never
    decrease with the raw length, so every shorter piece fits too. As T5, at
    density 0.5 the piece is shortened by one when that brings the targets
    length down to the inputs length (a rounder number).
    """

    def lengths_of(raw_lengths):
        return encoded_lengths(raw_lengths, noise_density, mean_noise_span_length, reserved_inputs_tokens, extra_spans)

    upper = int(np.ceil((inputs_length + 1) / (1 - noise_density))) + 2
    inputs, _ = lengths_of(np.arange(MIN_PIECE_LENGTH, upper))
    tokens_length = MIN_PIECE_LENGTH - 1 + int(np.count_nonzero(inputs <= inputs_length))
    if tokens_length < MIN_PIECE_LENGTH:
        raise ValueError(f"inputs length {inputs_length} holds no noised piece")
    filled, targets = (int(x) for x in lengths_of(tokens_length))
    if noise_density == 0.5 and targets > filled:
        tokens_length, targets = tokens_length - 1, targets - 1
    return tokens_length, targets


def span_piece_sizes(
    inputs_length: int,
    noise_density: float,
    mean_noise_span_length: float,
    random_roll: bool = False,
    reserved_inputs_tokens: int = 0,
    density_flag: str = "--noise-density",
    span_flag: str = "--mean-noise-span-length",
) -> PieceSizes:
    """Piece sizes for span corruption; `ConfigError` naming the flags when the values cannot work."""
    density, mean_span = noise_density, mean_noise_span_length
    require(0 < density < 1, f"{density_flag}: noise density must be in (0, 1), got {density}")
    require(mean_span >= 1, f"{span_flag}: mean noise span length must be at least 1, got {mean_span}")
    extra_spans = int(random_roll)
    shortest_inputs = int(encoded_lengths(MIN_PIECE_LENGTH, density, mean_span, reserved_inputs_tokens, extra_spans)[0])
    require(
        inputs_length >= shortest_inputs,
        f"--inputs-length {inputs_length} is too small for span corruption: it must be at least {shortest_inputs}",
    )
    raw_length, targets_length = random_spans_helper(inputs_length, density, mean_span, reserved_inputs_tokens, extra_spans)
    lengths = np.arange(MIN_PIECE_LENGTH, raw_length + 1)
    num_noise, num_spans = noise_counts(lengths, density, mean_span)
    cramped = lengths[num_spans > np.minimum(num_noise, lengths - num_noise)]
    if cramped.size:
        raise ConfigError(
            f"{density_flag} {density} with {span_flag} {mean_span}: a piece of {cramped[0]} tokens "
            "would need more spans than it has noise or non-noise tokens"
        )
    return PieceSizes(raw_length, targets_length, int(num_spans[-1]) + extra_spans)


def prefix_piece_sizes(inputs_length: int) -> PieceSizes:
    """Piece sizes for the encoder-decoder prefix LM: pieces of inputs_length − 1 tokens (T5's
    `split_tokens_to_inputs_length`).

    The prefix has at most n − 1 tokens, so the inputs (a mode token, if any,
    + prefix + eos) fit I, and the rest + eos fits n.
    """
    raw_length = inputs_length - 1
    require(
        raw_length >= MIN_PIECE_LENGTH,
        f"--inputs-length {inputs_length} is too small for a prefix LM: it must be at least {MIN_PIECE_LENGTH + 1}",
    )
    return PieceSizes(raw_length, raw_length, 0)


def require_sentinels(vocab: Vocab, needed: int) -> None:
    """Sentinels must never run out: the vocab needs at least `needed` extra ids."""
    require(
        len(vocab.sentinels) >= needed,
        f"these options can put {needed} noise spans in one piece but the vocab has {len(vocab.sentinels)} "
        f"sentinels: pass --extra-ids {needed} (or more)",
    )


def random_segmentation(num_items: int, num_segments: int, num_rows: int, rng: np.random.Generator) -> np.ndarray:
    """[num_rows, num_segments] positive parts adding up to `num_items`, every composition equally likely.

    As T5's `_random_segmentation`, the cuts are a uniform random subset of
    num_segments − 1 of the num_items − 1 gaps between items. T5 shuffles all
    the gaps; Floyd's algorithm draws one cut per step instead, each step for
    every row at once, so the cost follows the number of spans, not of tokens.
    """
    num_gaps, num_cuts = num_items - 1, num_segments - 1
    tops = np.arange(num_gaps - num_cuts, num_gaps)
    draws = rng.integers(0, tops + 1, size=(num_rows, num_cuts))
    is_cut = np.zeros((num_rows, num_gaps), dtype=bool)
    row = np.arange(num_rows)
    for step, top in enumerate(tops.tolist()):
        gap = draws[:, step]
        gap[is_cut[row, gap]] = top
        is_cut[row, gap] = True
    cuts = np.nonzero(is_cut)[1].reshape(num_rows, num_cuts) + 1
    edges = np.concatenate([np.zeros((num_rows, 1), np.int64), cuts, np.full((num_rows, 1), num_items, np.int64)], axis=1)
    return np.diff(edges, axis=1)


def random_spans_noise_mask(
    length: int,
    noise_density: float,
    mean_noise_span_length: float,
    num_masks: int,
    rng: np.random.Generator,
    random_roll: bool = False,
) -> np.ndarray:
    """bool [num_masks, length]: T5's random spans noise mask, one row per piece.

    Noise and non-noise totals come from `noise_counts`; each is split into
    num_spans random positive parts, interleaved non-noise, noise, non-noise,
    noise … With `random_roll` each row is rotated by its own uniform offset.
    """
    num_noise, num_spans = (int(x) for x in noise_counts(length, noise_density, mean_noise_span_length))
    noise_lengths = random_segmentation(num_noise, num_spans, num_masks, rng)
    nonnoise_lengths = random_segmentation(length - num_noise, num_spans, num_masks, rng)
    span_lengths = np.stack([nonnoise_lengths, noise_lengths], axis=2).reshape(num_masks, 2 * num_spans)
    flips = np.zeros((num_masks, length), dtype=bool)
    flips[np.arange(num_masks)[:, None], np.cumsum(span_lengths, axis=1)[:, :-1]] = True
    mask = np.logical_xor.accumulate(flips, axis=1)
    if random_roll:
        shift = rng.integers(0, length, size=num_masks)
        twice = np.concatenate([mask, mask], axis=1)
        mask = np.lib.stride_tricks.sliding_window_view(twice, length, axis=1)[np.arange(num_masks), length - shift]
    return mask


def random_prefix_lengths(length: int, num_pieces: int, rng: np.random.Generator) -> np.ndarray:
    """Prefix lengths uniform in [1, length − 1] (T5's `random_prefix_noise_mask`)."""
    return rng.integers(1, length, size=num_pieces)


def span_starts(noise_mask: np.ndarray) -> np.ndarray:
    """bool [B, n]: the first token of each noise span."""
    starts = noise_mask.copy()
    starts[:, 1:] &= ~noise_mask[:, :-1]
    return starts


def lay_rows(values: np.ndarray, keep: np.ndarray, width: int, pad: int, eos: int, lead: int | None = None) -> np.ndarray:
    """int32 [B, width]: `lead` (if any), each row's kept values in order, eos, then pad."""
    num_rows = values.shape[0]
    first = 0 if lead is None else 1
    rows = np.full((num_rows, width), pad, dtype=np.int32)
    if lead is not None:
        rows[:, 0] = lead
    column = np.arange(width)
    end = first + np.count_nonzero(keep, axis=1)[:, None]
    rows[(column >= first) & (column < end)] = values[keep]
    rows[column == end] = eos
    return rows


def span_corruption_rows(
    tokens: np.ndarray,
    noise_mask: np.ndarray,
    vocab: Vocab,
    inputs_length: int,
    targets_length: int,
    lead: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of pieces [B, n] under `noise_mask`.

    inputs: non-noise tokens with the k-th noise span replaced by `<extra_id_k>`,
    then eos; targets: each sentinel followed by its span, then eos. Running
    out of sentinels raises IndexError instead of wrapping into ordinary ids.
    """
    num_rows, length = tokens.shape
    starts = span_starts(noise_mask)
    start_index = np.flatnonzero(starts)
    spans_per_row = np.count_nonzero(starts, axis=1)
    span_rank = np.arange(start_index.size) - np.repeat(np.cumsum(spans_per_row) - spans_per_row, spans_per_row)
    marked = tokens.copy()
    marked.reshape(-1)[start_index] = np.asarray(vocab.sentinels, dtype=np.int32)[span_rank]
    inputs = lay_rows(marked, ~noise_mask | starts, inputs_length, vocab.pad, vocab.eos, lead)
    targets = lay_rows(
        np.stack([marked, tokens], axis=2).reshape(num_rows, 2 * length),
        np.stack([starts, noise_mask], axis=2).reshape(num_rows, 2 * length),
        targets_length,
        vocab.pad,
        vocab.eos,
    )
    return inputs, targets


def prefix_lm_rows(
    tokens: np.ndarray,
    prefix_lengths: np.ndarray,
    vocab: Vocab,
    inputs_length: int,
    targets_length: int,
    lead: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of pieces [B, n]: the prefix + eos, and the rest + eos."""
    in_prefix = np.arange(tokens.shape[1]) < prefix_lengths[:, None]
    inputs = lay_rows(tokens, in_prefix, inputs_length, vocab.pad, vocab.eos, lead)
    return inputs, lay_rows(tokens, ~in_prefix, targets_length, vocab.pad, vocab.eos)


def span_corruption_maker(
    vocab: Vocab,
    noise_density: float,
    mean_noise_span_length: float,
    random_roll: bool,
    inputs_length: int,
    targets_length: int,
    lead: int | None = None,
) -> RowMaker:
    """Span-corrupt equal-length pieces into `inputs`, `targets`; count noise tokens and spans."""

    def make(tokens: np.ndarray, rng: np.random.Generator):
        num_rows, length = tokens.shape
        mask = random_spans_noise_mask(length, noise_density, mean_noise_span_length, num_rows, rng, random_roll)
        inputs, targets = span_corruption_rows(tokens, mask, vocab, inputs_length, targets_length, lead)
        counters = {"noise_tokens": int(np.count_nonzero(mask)), "noise_spans": int(np.count_nonzero(span_starts(mask)))}
        return {"inputs": inputs, "targets": targets}, counters

    return make


def prefix_counters(tokens: np.ndarray, prefix_lengths: np.ndarray) -> dict[str, int]:
    """The predicted suffixes as noise: one span per piece."""
    return {"noise_tokens": int(tokens.size - prefix_lengths.sum()), "noise_spans": tokens.shape[0]}


def prefix_lm_maker(vocab: Vocab, inputs_length: int, targets_length: int, lead: int | None = None) -> RowMaker:
    """Split equal-length pieces into `inputs` (prefix) and `targets` (the rest)."""

    def make(tokens: np.ndarray, rng: np.random.Generator):
        prefix_lengths = random_prefix_lengths(tokens.shape[1], tokens.shape[0], rng)
        inputs, targets = prefix_lm_rows(tokens, prefix_lengths, vocab, inputs_length, targets_length, lead)
        return {"inputs": inputs, "targets": targets}, prefix_counters(tokens, prefix_lengths)

    return make


def decoder_prefix_lm_maker(vocab: Vocab, seq_len: int) -> RowMaker:
    """Pieces [B, n] of the eos-ended document stream as decoder-only rows: `input_ids` (the piece as it is),
    `loss_mask` (0 on the prefix, 1 on the rest of the piece, 0 on padding) and `prefix_length`."""

    def make(tokens: np.ndarray, rng: np.random.Generator):
        num_rows, length = tokens.shape
        prefix_lengths = random_prefix_lengths(length, num_rows, rng)
        position = np.arange(seq_len)
        input_ids = np.full((num_rows, seq_len), vocab.pad, dtype=np.int32)
        input_ids[:, :length] = tokens
        features = {
            "input_ids": input_ids,
            "loss_mask": ((position >= prefix_lengths[:, None]) & (position < length)).astype(np.int32),
            "prefix_length": prefix_lengths.astype(np.int32)[:, None],
        }
        return features, prefix_counters(tokens, prefix_lengths)

    return make


def denoise_stream(
    stream: np.ndarray,
    piece_lengths: np.ndarray,
    piece_kinds: np.ndarray,
    row_makers: Sequence[RowMaker],
    schema: Schema,
    rng: np.random.Generator,
) -> Examples:
    """One example per consecutive piece of `stream`, in stream order.

    Piece i has `piece_lengths[i]` tokens (the lengths must cover the stream;
    the last piece is cut short where it ends) and goes through
    `row_makers[piece_kinds[i]]`. Pieces of one kind and length are made in
    one vectorised call, groups in (kind, length) order, so the draws depend
    only on the stream and the kinds. Pieces too short to noise are dropped.
    """
    total = stream.shape[0]
    ends = np.cumsum(piece_lengths)
    num_pieces = int(np.searchsorted(ends, total)) + 1 if total else 0
    ends = np.minimum(ends[:num_pieces], total)
    starts = np.zeros_like(ends)
    starts[1:] = ends[:-1]
    lengths = ends - starts
    short = lengths < MIN_PIECE_LENGTH
    kept = np.flatnonzero(~short)
    counters = Counter(
        {
            "pieces": int(kept.size),
            "raw_tokens": int(lengths[kept].sum()),
            "short_pieces_dropped": int(short.sum()),
            "short_piece_tokens_dropped": int(lengths[short].sum()),
        }
    )
    features = {f.name: np.empty((kept.size, f.length), dtype=f.numpy_dtype) for f in schema.features}
    group = piece_kinds[kept].astype(np.int64) * (int(lengths.max(initial=0)) + 1) + lengths[kept]
    for key in np.unique(group):
        rows = np.flatnonzero(group == key)
        first = kept[rows[0]]
        tokens = np.lib.stride_tricks.sliding_window_view(stream, lengths[first])[starts[kept[rows]]]
        made, made_counters = row_makers[int(piece_kinds[first])](tokens, rng)
        for name, values in made.items():
            features[name][rows] = values
        counters.update(made_counters)
    return Examples(features, dict(counters))


def denoise_fixed_pieces(
    stream: np.ndarray, raw_length: int, row_maker: RowMaker, schema: Schema, rng: np.random.Generator
) -> Examples:
    """`denoise_stream` with pieces of `raw_length` tokens, all through `row_maker`."""
    num_pieces = -(-stream.shape[0] // raw_length)
    kinds = np.zeros(num_pieces, dtype=np.int64)
    return denoise_stream(stream, np.full(num_pieces, raw_length), kinds, [row_maker], schema, rng)


def noise_summary(counters: Mapping[str, int], prefix: str = "") -> dict[str, float]:
    """Noise fraction and mean noise span length from `<prefix>noise_tokens`, `<prefix>noise_spans`, `<prefix>raw_tokens`."""
    noise, spans, raw = (counters.get(f"{prefix}{k}", 0) for k in ("noise_tokens", "noise_spans", "raw_tokens"))
    return {
        f"{prefix}noise_fraction": noise / raw if raw else 0.0,
        f"{prefix}mean_noise_span_length": noise / spans if spans else 0.0,
    }


class SpanCorruption(Objective):
    name = "span_corruption"

    def __init__(
        self,
        vocab: Vocab,
        inputs_length: int = DEFAULT_INPUTS_LENGTH,
        targets_length: int | None = None,
        noise_density: float = DEFAULT_NOISE_DENSITY,
        mean_noise_span_length: float = DEFAULT_MEAN_NOISE_SPAN_LENGTH,
        random_roll: bool = False,
    ):
        super().__init__(vocab)
        self.sizes = span_piece_sizes(inputs_length, noise_density, mean_noise_span_length, random_roll)
        self.inputs_length = inputs_length
        self.targets_length = self.sizes.targets_length if targets_length is None else targets_length
        require(
            self.targets_length >= self.sizes.targets_length,
            f"--targets-length {self.targets_length} is too small: span corruption at inputs length {inputs_length}, "
            f"noise density {noise_density}, mean span {mean_noise_span_length} needs {self.sizes.targets_length}",
        )
        require_sentinels(vocab, self.sizes.sentinels)
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length
        self.random_roll = random_roll
        self._make_rows = span_corruption_maker(
            vocab, noise_density, mean_noise_span_length, random_roll, inputs_length, self.targets_length
        )

    @staticmethod
    def _arguments(options: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "inputs_length": int(option(options, "inputs_length", DEFAULT_INPUTS_LENGTH)),
            "targets_length": options.get("targets_length"),
            "noise_density": float(option(options, "noise_density", DEFAULT_NOISE_DENSITY)),
            "mean_noise_span_length": float(option(options, "mean_noise_span_length", DEFAULT_MEAN_NOISE_SPAN_LENGTH)),
            "random_roll": bool(option(options, "random_roll", False)),
        }

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "SpanCorruption":
        return cls(vocab, **cls._arguments(options))

    @classmethod
    def sentinels_needed(cls, options: Mapping[str, Any]) -> int:
        args = cls._arguments(options)
        return span_piece_sizes(
            args["inputs_length"], args["noise_density"], args["mean_noise_span_length"], args["random_roll"]
        ).sentinels

    @property
    def schema(self) -> Schema:
        return Schema(
            self.name,
            (
                Feature("inputs", self.inputs_length, counts_tokens=True),
                Feature("targets", self.targets_length, counts_tokens=True),
            ),
        )

    def params(self) -> dict[str, Any]:
        return {
            "inputs_length": self.inputs_length,
            "targets_length": self.targets_length,
            "noise_density": self.noise_density,
            "mean_noise_span_length": self.mean_noise_span_length,
            "random_roll": self.random_roll,
            "raw_length": self.sizes.raw_length,
        }

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        return denoise_fixed_pieces(docs.tokens, self.sizes.raw_length, self._make_rows, self.schema, rng)

    def summarize(self, counters: Mapping[str, int]) -> dict[str, float]:
        return noise_summary(counters)


class PrefixLM(Objective):
    name = "prefix_lm"

    def __init__(
        self,
        vocab: Vocab,
        inputs_length: int = DEFAULT_INPUTS_LENGTH,
        targets_length: int | None = None,
        layout: str = "encoder_decoder",
    ):
        super().__init__(vocab)
        require(layout in PREFIX_LAYOUTS, f"--prefix-layout must be one of {', '.join(PREFIX_LAYOUTS)}, got {layout!r}")
        self.inputs_length = inputs_length
        self.layout = layout
        if layout == "decoder_only":
            require(
                inputs_length >= MIN_PIECE_LENGTH,
                f"--inputs-length {inputs_length} is too small for a prefix LM: it must be at least {MIN_PIECE_LENGTH}",
            )
            self.sizes = PieceSizes(inputs_length, inputs_length, 0)
            self.targets_length = None
            self._make_rows = decoder_prefix_lm_maker(vocab, inputs_length)
        else:
            self.sizes = prefix_piece_sizes(inputs_length)
            self.targets_length = inputs_length if targets_length is None else targets_length
            require(
                self.targets_length >= self.sizes.targets_length,
                f"--targets-length {self.targets_length} is too small: a prefix LM at inputs length {inputs_length} "
                f"needs {self.sizes.targets_length}",
            )
            self._make_rows = prefix_lm_maker(vocab, inputs_length, self.targets_length)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "PrefixLM":
        return cls(
            vocab,
            inputs_length=int(option(options, "inputs_length", DEFAULT_INPUTS_LENGTH)),
            targets_length=options.get("targets_length"),
            layout=option(options, "prefix_layout", "encoder_decoder"),
        )

    @property
    def schema(self) -> Schema:
        if self.layout == "decoder_only":
            L = self.inputs_length
            features = (Feature("input_ids", L, counts_tokens=True), Feature("loss_mask", L), Feature("prefix_length", 1))
        else:
            features = (
                Feature("inputs", self.inputs_length, counts_tokens=True),
                Feature("targets", self.targets_length, counts_tokens=True),
            )
        return Schema(self.name, features)

    def params(self) -> dict[str, Any]:
        params = {"inputs_length": self.inputs_length, "prefix_layout": self.layout, "raw_length": self.sizes.raw_length}
        if self.targets_length is not None:
            params["targets_length"] = self.targets_length
        return params

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        stream = with_eos(docs, self.vocab.eos)[0] if self.layout == "decoder_only" else docs.tokens
        return denoise_fixed_pieces(stream, self.sizes.raw_length, self._make_rows, self.schema, rng)

    def summarize(self, counters: Mapping[str, int]) -> dict[str, float]:
        return noise_summary(counters)
