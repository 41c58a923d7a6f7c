"""The objectives, by name. Pure numpy: importable without Beam or TensorFlow."""

from __future__ import annotations

from transforms.errors import ConfigError
from transforms.objectives.base import Examples, Objective
from transforms.objectives.bert import MaskedLM, MaskedLMNextSentence, MaskedLMSentenceOrder
from transforms.objectives.clm import CausalLM
from transforms.objectives.t5 import PrefixLM, SpanCorruption
from transforms.objectives.ul2 import UL2

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (
    CausalLM,
    MaskedLM,
    MaskedLMNextSentence,
    MaskedLMSentenceOrder,
    SpanCorruption,
    PrefixLM,
    UL2,
)}

BERT_OBJECTIVES = tuple(cls.name for cls in (MaskedLM, MaskedLMNextSentence, MaskedLMSentenceOrder))

__all__ = ["BERT_OBJECTIVES", "OBJECTIVES", "ConfigError", "Examples", "Objective"]
