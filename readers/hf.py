"""Hugging Face `datasets` over the Parquet shards (fixed-length sequence columns)."""

from __future__ import annotations

from readers.manifest import Corpus
from transforms.extras import import_extra


def hf_dataset(path: str, split: str = "train", streaming: bool = False):
    """`datasets.load_dataset("parquet", ...)` on the version's shards of one split."""
    datasets = import_extra("datasets", "readers.hf")
    corpus = Corpus(path)
    return datasets.load_dataset("parquet", data_files={split: corpus.files(split, "parquet")}, split=split, streaming=streaming)
