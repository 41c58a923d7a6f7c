"""PyTorch input through `readers.records` (no TensorFlow, no `tfrecord` package).

`TokenmillDataset` is an `IterableDataset` of dicts of numpy arrays with the
manifest's fixed lengths; with several DataLoader workers each reads its own
subset of the shards.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from readers.manifest import Corpus
from readers.records import read_tfrecord

try:
    from torch.utils.data import IterableDataset
except ImportError:  # readable without torch: the iterator works on its own
    IterableDataset = object


def iter_tfrecord_examples(corpus: Corpus, files: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Examples of the given shard files, typed and shaped by the schema."""
    compression = "gzip" if corpus.tfrecord_compression else None
    for path in files:
        for batch in read_tfrecord(path, corpus.schema, compression):
            for i in range(len(next(iter(batch.values())))):
                yield {name: values[i] for name, values in batch.items()}


class TokenmillDataset(IterableDataset):
    def __init__(self, path: str, split: str = "train"):
        self.corpus = Corpus(path)
        self.files = self.corpus.files(split, "tfrecord")
        self.split = split

    def __len__(self) -> int:
        return self.corpus.num_examples(self.split)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        files = self.files
        try:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
        except ImportError:
            info = None
        if info is not None:
            files = files[info.id :: info.num_workers]
        return iter_tfrecord_examples(self.corpus, files)
