"""`readers.partition`: disjoint, covering, equal parts for every (rank, worker); orders that are functions of (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest

from readers.partition import examples_per_rank, plan


def split_indices(counts, **kwargs) -> list[int]:
    return [i for r in plan(counts, **kwargs) for i in range(r.first_index, r.first_index + r.size)]


def per_rank(counts, world_size, num_workers, **kwargs) -> list[list[int]]:
    return [
        [i for worker in range(num_workers) for i in split_indices(counts, world_size=world_size, rank=rank, num_workers=num_workers, worker=worker, **kwargs)]
        for rank in range(world_size)
    ]


@pytest.mark.parametrize(
    "counts, world_size, num_workers",
    [([50, 47, 53], 2, 2), ([101], 4, 2), ([5, 0, 7, 3], 3, 4), ([20] * 16, 8, 3), ([3], 4, 2)],
)
@pytest.mark.parametrize("shuffle", [False, True])
def test_ranks_and_workers_read_disjoint_equal_parts_covering_all_but_the_remainder(counts, world_size, num_workers, shuffle):
    ranks = per_rank(counts, world_size, num_workers, shuffle=shuffle, seed=3, epoch=1)
    total = sum(counts)
    assert [len(r) for r in ranks] == [total // world_size] * world_size == [examples_per_rank(total, world_size)] * world_size
    everything = [i for r in ranks for i in r]
    assert len(set(everything)) == len(everything)
    assert set(everything) <= set(range(total)) and total - len(everything) == total % world_size


def test_padding_repeats_the_first_examples_so_every_rank_has_the_same_count():
    counts = [50, 47, 4]
    ranks = per_rank(counts, 4, 2, drop_remainder=False)
    assert [len(r) for r in ranks] == [26] * 4
    everything = [i for r in ranks for i in r]
    assert sorted(set(everything)) == list(range(101))
    assert sorted(everything) == sorted(list(range(101)) + [0, 1, 2])


def test_without_shuffling_epoch_0_reads_the_shards_in_stored_order():
    counts = [10, 12, 7]
    assert per_rank(counts, 1, 1) == [list(range(29))]
    assert [(r.shard, r.start, r.stop) for r in plan(counts, world_size=2, rank=1)] == [(1, 4, 12), (2, 0, 6)]


def test_one_shard_is_split_by_record_between_ranks_and_workers():
    ranges = [plan([101], world_size=4, rank=rank, num_workers=2, worker=worker) for rank in range(4) for worker in range(2)]
    assert [(r[0].start, r[0].stop) for r in ranges] == [(0, 13), (13, 25), (25, 38), (38, 50), (50, 63), (63, 75), (75, 88), (88, 100)]


def test_the_order_is_a_function_of_seed_and_epoch():
    counts = [7] * 12
    one = per_rank(counts, 2, 2, shuffle=True, seed=5, epoch=2)
    assert one == per_rank(counts, 2, 2, shuffle=True, seed=5, epoch=2)
    assert one != per_rank(counts, 2, 2, shuffle=True, seed=5, epoch=3)
    assert one != per_rank(counts, 2, 2, shuffle=True, seed=6, epoch=2)


def test_bad_ranks_and_workers_are_refused():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        plan([10], world_size=2, rank=2)
    with pytest.raises(ValueError, match="worker 3 is not in"):
        plan([10], num_workers=2, worker=3)
    assert np.array_equal(per_rank([0, 0], 2, 1), [[], []])
