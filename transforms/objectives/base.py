"""What every objective is: a pure function from a bucket of documents to examples."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Mapping

import numpy as np

from schemas import Schema
from transforms.errors import ConfigError
from transforms.documents import DocBatch
from transforms.vocab import Vocab


@dataclasses.dataclass
class Examples:
    """A batch of examples: 2-D arrays keyed by feature name, plus counters.

    Counters are summed over all buckets into the manifest (for example
    `padding_tokens`, `truncated_tokens`).
    """

    features: dict[str, np.ndarray]
    counters: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> int:
        return next(iter(self.features.values())).shape[0] if self.features else 0


class Objective(abc.ABC):
    """A pre-training objective.

    Subclasses are small frozen parameter holders; `build` must be a pure
    function of (documents in canonical order, generator): no global state,
    no clock, no I/O. Sentence boundaries in `DocBatch` matter only to
    objectives that set `uses_sentences`.
    """

    name: ClassVar[str]
    uses_sentences: ClassVar[bool] = False

    def __init__(self, vocab: Vocab):
        self.vocab = vocab

    @property
    def needs_word_starts(self) -> bool:
        """True when the objective masks whole words, so documents must say where words start."""
        return False

    @property
    @abc.abstractmethod
    def schema(self) -> Schema:
        """The features this objective writes."""

    @abc.abstractmethod
    def params(self) -> dict[str, Any]:
        """Every parameter that shapes the output, for the manifest and the fingerprint."""

    @abc.abstractmethod
    def build(self, docs: DocBatch, rng: np.random.Generator) -> Examples:
        """Make examples from `docs` (sorted, one hash bucket) using only `rng` for randomness."""

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any], vocab: Vocab) -> "Objective":
        """Construct from parsed CLI options; raise `ConfigError` for impossible values."""

    @classmethod
    def sentinels_needed(cls, options: Mapping[str, Any]) -> int:
        """How many `<extra_id_k>` sentinels these options can use (sizes the vocab before construction)."""
        return 0

    def summarize(self, counters: Mapping[str, int]) -> dict[str, float]:
        """Derived figures for the manifest from the summed `Examples.counters` (e.g. a label share)."""
        return {}


def option(options: Mapping[str, Any], key: str, default: Any) -> Any:
    """`options[key]`, or `default` when it is missing or None (the CLI passes only the flags given)."""
    value = options.get(key)
    return default if value is None else value


def require(condition: bool, message: str) -> None:
    """Raise `ConfigError(message)` unless `condition` holds."""
    if not condition:
        raise ConfigError(message)
