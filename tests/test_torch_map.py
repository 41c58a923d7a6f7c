"""`TokenmillMapDataset` under forked DataLoader workers, after the main process has read from it."""

from __future__ import annotations

import numpy as np
import pytest

from corpus_tools import build, read_parquet, sample_subset

ROWS_PER_GROUP = 40


@pytest.fixture(scope="module")
def many_row_groups(tmp_path_factory, sample_docs):
    """A clm build whose Parquet shards hold row groups of 40 rows (the writer's default is 8 MiB: one group for a small build)."""
    import transforms.write

    root = tmp_path_factory.mktemp("row-groups")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transforms.write, "parquet_rows_per_group", lambda schema: ROWS_PER_GROUP)
        return build(root / "out", "--input", sample_subset(root, sample_docs), "--seq-len", 64, "--num-shards", 2)[1]


def test_workers_forked_after_a_peek_read_every_example_as_pyarrow_does(many_row_groups):
    import pyarrow.parquet as pq
    from torch.utils.data import DataLoader, DistributedSampler

    from corpus_tools import shard_files
    from readers.torch import TokenmillMapDataset

    assert min(pq.ParquetFile(path).metadata.num_row_groups for path in shard_files(many_row_groups, "train", "parquet")) >= 5
    dataset = TokenmillMapDataset(many_row_groups, cached_row_groups=2)
    peek = dataset[0]  # opens the first shard in the main process, before the workers fork
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, num_workers=2)
    indices = np.fromiter(iter(sampler), dtype=np.int64)
    got = {name: np.concatenate([batch[name].numpy() for batch in loader]) for name in peek}
    expected = read_parquet(many_row_groups)
    assert sorted(indices.tolist()) == list(range(len(dataset)))
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values[indices], err_msg=name)
    np.testing.assert_array_equal(peek["input_ids"], expected["input_ids"][0])
