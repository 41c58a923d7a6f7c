"""Trainer-side readers driven by `manifest.json`: tf.data, Grain (`readers.grain`, over ArrayRecord or Parquet), PyTorch (`readers.torch`, over `readers.records`), Hugging Face datasets.

None of them imports Beam; each imports its own framework only when used.
"""

from readers.manifest import Corpus

__all__ = ["Corpus"]
