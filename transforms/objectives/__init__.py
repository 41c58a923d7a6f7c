"""The objectives, by name. Pure numpy: importable without Beam or TensorFlow."""

from __future__ import annotations

from transforms.objectives.base import ConfigError, Examples, Objective
from transforms.objectives.clm import CausalLM

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (CausalLM,)}

__all__ = ["OBJECTIVES", "ConfigError", "Examples", "Objective"]
