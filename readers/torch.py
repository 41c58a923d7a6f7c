"""PyTorch input through the `tfrecord` package (no TensorFlow needed).

`TokenmillDataset` is an `IterableDataset` of dicts of numpy arrays with the
manifest's fixed lengths; with several DataLoader workers each reads its own
subset of the shards.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from readers.manifest import Corpus
from schemas import INT

try:
    from torch.utils.data import IterableDataset
except ImportError:  # readable without torch: the iterator works on its own
    IterableDataset = object


def iter_tfrecord_examples(corpus: Corpus, files: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Examples of the given shard files, typed and shaped by the schema."""
    from tfrecord.reader import tfrecord_loader

    description = {f.name: ("int" if f.dtype == INT else "float") for f in corpus.schema.features}
    dtypes = {f.name: f.numpy_dtype for f in corpus.schema.features}
    for path in files:
        if corpus.tfrecord_compression:
            records = tfrecord_loader(path, None, description, compression_type="gzip")
        else:
            records = tfrecord_loader(path, None, description)
        for record in records:
            yield {name: np.asarray(value, dtype=dtypes[name]) for name, value in record.items()}


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
