"""`readers.partition`: one order per (seed, epoch), disjoint equal parts for every (rank, worker), and what is left after a save at any layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from readers.partition import EpochOrder, examples_per_rank, left_after, whole_epoch, worker_count, worker_positions, worker_runs


def positions(runs) -> list[int]:
    return [p for a, b in runs.tolist() for p in range(a, b)]


def per_worker(remaining, world_size, num_workers, chunk, drop_remainder=True) -> list[list[list[int]]]:
    return [
        [positions(worker_runs(remaining, world_size, rank, num_workers, worker, chunk, drop_remainder)) for worker in range(num_workers)]
        for rank in range(world_size)
    ]


@pytest.mark.parametrize("total, world_size, num_workers, chunk", [(150, 2, 2, 8), (101, 4, 2, 5), (15, 3, 4, 4), (320, 8, 3, 7), (3, 4, 2, 4)])
def test_ranks_and_workers_read_disjoint_equal_parts_covering_all_but_the_remainder(total, world_size, num_workers, chunk):
    parts = per_worker(whole_epoch(total), world_size, num_workers, chunk)
    ranks = [sum(workers, []) for workers in parts]
    assert [len(r) for r in ranks] == [examples_per_rank(total, world_size)] * world_size
    everything = sum(ranks, [])
    assert len(set(everything)) == len(everything) and set(everything) <= set(range(total))
    assert total - len(everything) == total % world_size
    for rank, workers in enumerate(parts):
        for worker, got in enumerate(workers):
            assert len(got) == worker_count(whole_epoch(total), world_size, num_workers, worker, chunk)
            assert worker_positions(whole_epoch(total), np.arange(len(got)), world_size, rank, num_workers, worker, chunk).tolist() == got


def test_chunks_go_round_robin_to_ranks_then_workers():
    parts = per_worker(whole_epoch(45), 2, 2, 4)
    assert parts[0] == [[0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 41], [8, 9, 10, 11, 24, 25, 26, 27, 40]]
    assert parts[1] == [[4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 43], [12, 13, 14, 15, 28, 29, 30, 31, 42]]


def test_padding_repeats_the_first_positions_so_every_rank_has_the_same_count():
    ranks = [sum(w, []) for w in per_worker(whole_epoch(101), 4, 2, 5, drop_remainder=False)]
    assert [len(r) for r in ranks] == [26] * 4
    assert sorted(sum(ranks, [])) == sorted(list(range(101)) + [0, 1, 2])


def consume(remaining, world_size, num_workers, chunk, counts):
    """Positions each rank yielded after its worker w yielded counts[w], and what is left."""
    eaten = [p for rank in range(world_size) for w in range(num_workers) for p in positions(worker_runs(remaining, world_size, rank, num_workers, w, chunk))[: counts[w]]]
    return eaten, left_after(remaining, counts, world_size, num_workers, chunk)


@pytest.mark.parametrize("counts", [[13, 12], [0, 0], [40, 31], [9, 0]])
@pytest.mark.parametrize("after", [(2, 1), (3, 2), (4, 2), (5, 3)])
def test_a_save_at_one_layout_continues_at_any_other_with_nothing_repeated_or_skipped(counts, after):
    total, chunk = 317, 6
    before, remaining = consume(whole_epoch(total), 4, 2, chunk, counts)
    rest = sum(sum(per_worker(remaining, *after, chunk), []), [])
    left = int((remaining @ [-1, 1]).sum())
    assert left == total - len(before)
    assert len(set(before + rest)) == len(before) + len(rest)
    assert len(before) + len(rest) == total - left % after[0]
    assert set(positions(remaining)) == set(range(total)) - set(before)
    ranks = per_worker(remaining, *after, chunk)
    assert {len(sum(r, [])) for r in ranks} == {left // after[0]}


def test_resumes_chain_and_a_finished_epoch_stays_finished():
    total, chunk = 500, 8
    seen, remaining = consume(whole_epoch(total), 4, 2, chunk, [30, 22])
    more, remaining = consume(remaining, 3, 2, chunk, [17, 9])
    seen += more
    rest = sum(sum(per_worker(remaining, 2, 1, chunk), []), [])
    assert len(set(seen + rest)) == len(seen + rest) == total - (total - len(seen)) % 2
    totals = [worker_count(whole_epoch(total), 4, 2, w, chunk) for w in range(2)]
    assert left_after(whole_epoch(total), totals, 4, 2, chunk).size == 0
    with pytest.raises(ValueError, match="not within"):
        left_after(whole_epoch(total), [t + 1 for t in totals], 4, 2, chunk)


def order(seed, epoch, shuffle=True, counts=(50, 47, 53), window=16) -> list[int]:
    epoch_order = EpochOrder(counts, seed, epoch, shuffle, window)
    return epoch_order.split_indices(epoch_order.stream_positions(0, epoch_order.total)).tolist()


def test_the_order_is_a_function_of_the_pair_seed_epoch():
    orders = {(seed, epoch): order(seed, epoch) for seed, epoch in itertools.product((0, 1), (0, 1, 2))}
    assert all(sorted(o) == list(range(150)) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) == 6
    assert order(1, 2) == order(1, 2)
    assert order(0, 0, shuffle=False) == order(1, 2, shuffle=False) == list(range(150))


def test_windows_are_record_ranges_of_the_stream():
    epoch_order = EpochOrder([10, 12, 7], seed=3, shuffle=True, window=8)
    pieces = list(epoch_order.pieces(5, 20))
    assert [(first, len(offsets)) for first, offsets in pieces] == [(0, 3), (8, 8), (16, 4)]
    assert sorted(pieces[1][1]) == list(range(8))
    ranges = epoch_order.ranges(8, 16)
    assert sum(r.size for r in ranges) == 8 and len({r.shard for r in ranges}) <= 2


def test_bad_ranks_and_workers_are_refused():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        worker_runs(whole_epoch(10), world_size=2, rank=2)
    with pytest.raises(ValueError, match="worker 3 is not in"):
        worker_runs(whole_epoch(10), num_workers=2, worker=3)
    assert worker_runs(whole_epoch(0), 2, 1).size == 0
