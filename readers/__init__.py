"""Trainer-side readers driven by `manifest.json`: tf.data, PyTorch (tfrecord package), Hugging Face datasets.

None of them imports Beam; each imports its own framework only when used.
"""

from readers.manifest import Corpus

__all__ = ["Corpus"]
