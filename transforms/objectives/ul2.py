"""UL2 mixture of denoisers (SPEC §2 ul2; Tay et al. 2022, "UL2: Unifying Language Learning Paradigms").

The bucket's documents are concatenated (no separator) and walked piece by
piece: each piece draws its denoiser by the rates, takes that denoiser's raw
length from the stream, is noised with the span corruption or prefix LM of
`t5.py`, and gets the denoiser's mode token in front of its inputs.

Choices where SPEC and UL2 leave room:
- Raw lengths come from T5's `random_spans_helper` with the mode token counted
  as a reserved inputs token, i.e. pieces sized for one token less; the
  helper's density-0.5 rounding compares the targets with the whole inputs
  length (mode token included), so (8, .5) at inputs 512 gives 907/512. The S
  denoiser takes pieces of inputs_length − 1 tokens, split uniformly in
  [1, n − 1] as `prefix_lm`: `[S2S]` + a prefix of at most n − 1 tokens + eos
  fits the inputs, so S inputs reach the full length.
- All denoiser choices of a bucket are drawn first, enough to cover the
  stream whatever is drawn, then pieces are noised grouped by denoiser; the
  last piece is cut short at the end of the stream and noised at its length.
- `random_roll` applies to every span denoiser.
- `--ul2-denoisers` is a JSON list (inline, or a path to a .json file) of
  objects with keys `name`, `mode` (one of [NLU] [NLG] [S2S]), `rate`
  (default 1; rates are normalised) and either `mean_span` and `density` or
  `"prefix_lm": true`. Unknown keys are an error, so a typo is not ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from schemas import Feature, Schema
from transforms.documents import DocBatch
from transforms.errors import ConfigError
from transforms.objectives.base import Examples, Objective, option, require
from transforms.objectives.t5 import (
    DEFAULT_INPUTS_LENGTH,
    PieceSizes,
    RowMaker,
    denoise_stream,
    noise_summary,
    prefix_lm_maker,
    prefix_piece_sizes,
    require_sentinels,
    span_corruption_maker,
    span_piece_sizes,
)
from transforms.vocab import MODE_TOKENS, NLG, NLU, S2S, Vocab

DEFAULT_TARGETS_LENGTH = 512
FLAG = "--ul2-denoisers"


@dataclasses.dataclass(frozen=True)
class Denoiser:
    """One row of the mixture: random spans (`mean_span`, `density`) or, with both None, a prefix LM."""

    name: str
    mode: str
    rate: float = 1.0
    mean_span: float | None = None
    density: float | None = None

    @property
    def prefix_lm(self) -> bool:
        return self.mean_span is None

    def describe(self) -> str:
        return f"{self.name} prefix LM" if self.prefix_lm else f"{self.name} {self.mean_span:g}/{self.density:g}"


DEFAULT_DENOISERS = (
    Denoiser("R", NLU, mean_span=3, density=0.15),
    Denoiser("R", NLU, mean_span=8, density=0.15),
    Denoiser("X", NLG, mean_span=3, density=0.5),
    Denoiser("X", NLG, mean_span=8, density=0.5),
    Denoiser("X", NLG, mean_span=64, density=0.15),
    Denoiser("X", NLG, mean_span=64, density=0.5),
    Denoiser("S", S2S),
)


def parse_denoisers(spec: str | Sequence[Mapping[str, Any]]) -> tuple[Denoiser, ...]:
    """The denoiser table from `--ul2-denoisers`: a JSON list, a path to a .json file, or the parsed list."""
    if isinstance(spec, str):
        if not spec.lstrip().startswith("["):
            require(os.path.isfile(spec), f"{FLAG}: {spec!r} is neither a JSON list nor a .json file")
            with open(spec, encoding="utf-8") as f:
                spec = f.read()
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{FLAG}: not valid JSON ({e})") from None
    require(isinstance(spec, list) and len(spec) > 0, f"{FLAG}: expected a non-empty list of denoisers")
    return tuple(_parse_denoiser(i, entry) for i, entry in enumerate(spec))


def _parse_denoiser(index: int, entry: Any) -> Denoiser:
    where = f"{FLAG}: denoiser {index}"
    require(isinstance(entry, dict), f"{where} must be an object, got {entry!r}")
    prefix_lm = entry.get("prefix_lm", False)
    require(isinstance(prefix_lm, bool), f"{where}: prefix_lm must be true or false")
    span_keys = {"mean_span", "density"}
    allowed = {"name", "mode", "rate", "prefix_lm"} | (set() if prefix_lm else span_keys)
    unknown = sorted(set(entry) - allowed)
    require(not unknown, f"{where}: unexpected keys {unknown} (allowed: {sorted(allowed)})")
    require(isinstance(entry.get("name"), str), f"{where}: needs a \"name\" string")
    require(entry.get("mode") in MODE_TOKENS, f"{where}: \"mode\" must be one of {', '.join(MODE_TOKENS)}")
    rate = entry.get("rate", 1)
    require(_is_number(rate) and rate >= 0, f"{where}: \"rate\" must be a number >= 0, got {rate!r}")
    if prefix_lm:
        return Denoiser(entry["name"], entry["mode"], float(rate))
    require(
        all(_is_number(entry.get(k)) for k in span_keys),
        f"{where}: needs numbers \"mean_span\" and \"density\", or \"prefix_lm\": true",
    )
    return Denoiser(entry["name"], entry["mode"], float(rate), float(entry["mean_span"]), float(entry["density"]))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def denoiser_sizes(
    denoisers: Sequence[Denoiser], inputs_length: int, mode_tokens: bool, random_roll: bool
) -> tuple[PieceSizes, ...]:
    """Each denoiser's piece sizes; the mode token, when on, is one reserved inputs token."""
    reserved = int(mode_tokens)
    sizes = []
    for index, d in enumerate(denoisers):
        if d.prefix_lm:
            sizes.append(prefix_piece_sizes(inputs_length))
        else:
            flag = f"{FLAG} (denoiser {index}, {d.describe()})"
            sizes.append(span_piece_sizes(inputs_length, d.density, d.mean_span, random_roll, reserved, flag, flag))
    return tuple(sizes)


class UL2(Objective):
    name = "ul2"

    def __init__(
        self,
        vocab: Vocab,
        inputs_length: int = DEFAULT_INPUTS_LENGTH,
        targets_length: int = DEFAULT_TARGETS_LENGTH,
        denoisers: Sequence[Denoiser] = DEFAULT_DENOISERS,
        mode_tokens: bool = True,
        random_roll: bool = False,
    ):
        super().__init__(vocab)
        self.denoisers = tuple(denoisers)
        self.sizes = denoiser_sizes(self.denoisers, inputs_length, mode_tokens, random_roll)
        for d, s in zip(self.denoisers, self.sizes):
            require(
                targets_length >= s.targets_length,
                f"--targets-length {targets_length} is too small: UL2 denoiser {d.describe()} at inputs length "
                f"{inputs_length} needs {s.targets_length}",
            )
        require_sentinels(vocab, max(s.sentinels for s in self.sizes))
        total_rate = sum(d.rate for d in self.denoisers)
        require(total_rate > 0, f"{FLAG}: the rates add up to 0")
        self.rates = np.array([d.rate / total_rate for d in self.denoisers])
        self.inputs_length = inputs_length
        self.targets_length = targets_length
        self.mode_tokens = mode_tokens
        self.random_roll = random_roll
        self._row_makers = [self._row_maker(i) for i in range(len(self.denoisers))]

    def _row_maker(self, index: int) -> RowMaker:
        d = self.denoisers[index]
        lead = self.vocab.mode_token(d.mode) if self.mode_tokens else None
        if d.prefix_lm:
            make = prefix_lm_maker(self.vocab, self.inputs_length, self.targets_length, lead)
        else:
            make = span_corruption_maker(
                self.vocab, d.density, d.mean_span, self.random_roll, self.inputs_length, self.targets_length, lead
            )
        return functools.partial(_tag_with_denoiser, index, make)

    @staticmethod
    def _arguments(options: Mapping[str, Any]) -> dict[str, Any]:
        spec = options.get("ul2_denoisers")
        return {
            "inputs_length": int(option(options, "inputs_length", DEFAULT_INPUTS_LENGTH)),
            "targets_length": int(option(options, "targets_length", DEFAULT_TARGETS_LENGTH)),
            "denoisers": DEFAULT_DENOISERS if spec is None else parse_denoisers(spec),
            "mode_tokens": bool(option(options, "mode_tokens", True)),
            "random_roll": bool(option(options, "random_roll", False)),
        }

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "UL2":
        return cls(vocab, **cls._arguments(options))

    @classmethod
    def sentinels_needed(cls, options: Mapping[str, Any]) -> int:
        args = cls._arguments(options)
        sizes = denoiser_sizes(args["denoisers"], args["inputs_length"], args["mode_tokens"], args["random_roll"])
        return max(s.sentinels for s in sizes)

    @property
    def schema(self) -> Schema:
        return Schema(
            self.name,
            (
                Feature("inputs", self.inputs_length, counts_tokens=True),
                Feature("targets", self.targets_length, counts_tokens=True),
                Feature("denoiser", 1),
            ),
        )

    def params(self) -> dict[str, Any]:
        return {
            "inputs_length": self.inputs_length,
            "targets_length": self.targets_length,
            "mode_tokens": self.mode_tokens,
            "random_roll": self.random_roll,
            "denoisers": [
                {
                    **dataclasses.asdict(d),
                    "rate": float(rate),
                    "prefix_lm": d.prefix_lm,
                    "raw_length": s.raw_length,
                    "max_targets_length": s.targets_length,
                }
                for d, s, rate in zip(self.denoisers, self.sizes, self.rates)
            ],
        }

    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        raw_lengths = np.array([s.raw_length for s in self.sizes])
        enough = -(-docs.num_tokens // int(raw_lengths.min()))
        kinds = rng.choice(len(self.denoisers), size=enough, p=self.rates)
        return denoise_stream(docs.tokens, raw_lengths[kinds], kinds, self._row_makers, self.schema, rng)

    def summarize(self, counters: Mapping[str, int]) -> dict[str, float]:
        pieces = counters.get("pieces", 0)
        summary: dict[str, float] = {}
        for i in range(len(self.denoisers)):
            summary[f"denoiser_{i}_share"] = counters.get(f"denoiser_{i}", 0) / pieces if pieces else 0.0
            summary.update(noise_summary(counters, f"denoiser_{i}_"))
        return summary


def _tag_with_denoiser(index: int, make: RowMaker, tokens: np.ndarray, rng: np.random.Generator):
    """`make`'s rows plus the `denoiser` feature; its counters under `denoiser_<index>_`."""
    features, counters = make(tokens, rng)
    features["denoiser"] = np.full((tokens.shape[0], 1), index, dtype=np.int32)
    prefix = f"denoiser_{index}"
    return features, {
        prefix: tokens.shape[0],
        f"{prefix}_raw_tokens": int(tokens.size),
        **{f"{prefix}_{name}": value for name, value in counters.items()},
    }
