"""Exact resume through `StatefulDataLoader` in a fresh process, and orders that are functions of (seed, epoch)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build, sample_subset

BATCH = 8
STOP_AFTER = 7


def _loader(path: str, options: dict):
    from torchdata.stateful_dataloader import StatefulDataLoader

    from readers.torch import TokenmillDataset

    return StatefulDataLoader(TokenmillDataset(path, **options), batch_size=BATCH, num_workers=2)


def _save(batches, path: str) -> None:
    np.savez(path, **{f"{i}/{name}": value.numpy() for i, batch in enumerate(batches) for name, value in batch.items()})


def _interrupted(path: str, options: dict, out: str) -> None:
    """Read STOP_AFTER batches of epoch 1, save the loader's state, then read on to the end as if uninterrupted."""
    import torch

    loader = _loader(path, options)
    loader.dataset.set_epoch(1)
    batches = iter(loader)
    for _ in range(STOP_AFTER):
        next(batches)
    torch.save(loader.state_dict(), os.path.join(out, "state.pt"))
    _save(list(batches), os.path.join(out, "uninterrupted.npz"))


def _resumed(path: str, options: dict, out: str) -> None:
    """A fresh loader restored from the saved state, read to the end of the epoch."""
    import torch

    loader = _loader(path, options)
    loader.load_state_dict(torch.load(os.path.join(out, "state.pt")))
    _save(list(loader), os.path.join(out, "resumed.npz"))


def run_fresh(function: str, *args) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    code = f"import test_torch_resume as t; t.{function}(*{args!r})"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def small_input(tmp_path_factory, sample_docs):
    return sample_subset(tmp_path_factory.mktemp("small-input"), sample_docs)


@pytest.fixture(scope="module")
def clm(small_input, tmp_path_factory):
    return build(tmp_path_factory.mktemp("clm"), "--input", small_input, "--seq-len", 64, "--num-shards", 3)[1]


@pytest.fixture(scope="module")
def unmasked_mlm(small_input, tmp_path_factory):
    return build(tmp_path_factory.mktemp("mlm"), "--input", small_input, "--objective", "mlm", "--seq-len", 64, "--masking", "none", "--num-shards", 2)[1]


@pytest.mark.parametrize(
    "corpus, options",
    [("clm", {}), ("clm", {"shuffle": True, "window": 50}), ("unmasked_mlm", {"shuffle": True, "window": 50, "seed": 3})],
    ids=["in-order", "shuffled", "dynamic-masking"],
)
def test_a_restored_loader_yields_the_rest_of_the_epoch_byte_for_byte(corpus, options, request, tmp_path):
    path = request.getfixturevalue(corpus)
    run_fresh("_interrupted", path, options, str(tmp_path))
    run_fresh("_resumed", path, options, str(tmp_path))
    with np.load(tmp_path / "uninterrupted.npz") as expected, np.load(tmp_path / "resumed.npz") as got:
        assert sorted(expected.files) == sorted(got.files)
        assert len(expected.files) > 20
        for name in expected.files:
            assert expected[name].dtype == got[name].dtype and expected[name].tobytes() == got[name].tobytes(), name
        if corpus == "unmasked_mlm":
            assert any(np.any(expected[name] > 0) for name in expected.files if name.endswith("masked_lm_weights"))


def _epoch(path: str, epoch: int, **options) -> np.ndarray:
    from readers.torch import TokenmillDataset

    dataset = TokenmillDataset(path, **options)
    dataset.set_epoch(epoch)
    return np.stack([np.concatenate(list(e.values())) for e in dataset])


def test_each_epoch_has_its_own_order_and_the_same_epoch_the_same(clm):
    one = _epoch(clm, 1, shuffle=True, seed=5, window=100)
    assert np.array_equal(one, _epoch(clm, 1, shuffle=True, seed=5, window=100))
    other = _epoch(clm, 2, shuffle=True, seed=5, window=100)
    assert not np.array_equal(one, other)
    assert sorted(map(bytes, one)) == sorted(map(bytes, other))
    stored = _epoch(clm, 0)
    assert np.array_equal(stored, _epoch(clm, 3)), "without shuffling every epoch reads the stored order"
    assert not np.array_equal(one, stored)


def test_dynamic_masks_differ_between_epochs_and_follow_the_seed(unmasked_mlm):
    one = _epoch(unmasked_mlm, 0)
    assert np.array_equal(one, _epoch(unmasked_mlm, 0))
    assert not np.array_equal(one, _epoch(unmasked_mlm, 1))
    assert not np.array_equal(one, _epoch(unmasked_mlm, 0, seed=1))


def test_a_state_saved_with_other_settings_is_refused(clm):
    from readers.torch import TokenmillDataset

    state = TokenmillDataset(clm, shuffle=True).state_dict()
    with pytest.raises(ValueError, match=r"another order.*'shuffle': \(True, False\)"):
        TokenmillDataset(clm).load_state_dict(state)


def test_persistent_workers_read_each_epoch_set_after_they_started(clm):
    """A persistent DataLoader worker keeps its copy of the dataset from the first epoch; it still reads the epoch `set_epoch` sets."""
    from torch.utils.data import DataLoader

    from readers.torch import TokenmillDataset

    dataset = TokenmillDataset(clm, shuffle=True, seed=5, window=100)
    loader = DataLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
    by_epoch = {}
    for epoch in (1, 2, 1):
        dataset.set_epoch(epoch)
        by_epoch.setdefault(epoch, []).append(np.stack([np.concatenate([v.numpy() for v in e.values()]) for e in loader]))
    fresh = {epoch: DataLoader(TokenmillDataset(clm, shuffle=True, seed=5, window=100), batch_size=None, num_workers=2) for epoch in (1, 2)}
    for epoch, fresh_loader in fresh.items():
        fresh_loader.dataset.set_epoch(epoch)
        expected = np.stack([np.concatenate([v.numpy() for v in e.values()]) for e in fresh_loader])
        assert all(np.array_equal(got, expected) for got in by_epoch[epoch]), epoch
    assert not np.array_equal(by_epoch[1][0], by_epoch[2][0])


def test_the_map_dataset_masks_each_example_as_the_iterable_one_does_in_the_same_epoch(unmasked_mlm):
    from readers.torch import TokenmillDataset, TokenmillMapDataset

    mapped = TokenmillMapDataset(unmasked_mlm, seed=3)
    assert mapped.masking is not None
    by_epoch = {}
    for epoch in (0, 1):
        mapped.set_epoch(epoch)
        streamed = TokenmillDataset(unmasked_mlm, seed=3, fmt="parquet")
        streamed.set_epoch(epoch)
        by_epoch[epoch] = [mapped[i] for i in range(len(mapped))]
        count = 0
        for i, example in enumerate(streamed):
            assert all(np.array_equal(example[name], by_epoch[epoch][i][name]) for name in example), (epoch, i)
            count += 1
        assert count == len(mapped) > 20
    assert any(not np.array_equal(a["masked_lm_positions"], b["masked_lm_positions"]) for a, b in zip(by_epoch[0], by_epoch[1]))
    assert TokenmillMapDataset(unmasked_mlm, dynamic_masking=False).masking is None


ELASTIC = {"shuffle": True, "seed": 3, "window": 16}
SAVED_AT = (4, 2)
STEPS = 5


def _rows(batches) -> np.ndarray:
    return np.concatenate([np.concatenate([b[name].numpy() for name in sorted(b)], axis=1) for b in batches])


def _elastic_saved(path: str, out: str) -> None:
    """Ranks 0..3 of 4, 2 workers each, STEPS batches of epoch 1, then each rank's loader state and what it yielded."""
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    from readers.torch import TokenmillDataset

    world_size, num_workers = SAVED_AT
    for rank in range(world_size):
        loader = StatefulDataLoader(TokenmillDataset(path, rank=rank, world_size=world_size, **ELASTIC), batch_size=BATCH, num_workers=num_workers)
        loader.dataset.set_epoch(1)
        batches = iter(loader)
        read = [next(batches) for _ in range(STEPS)]
        torch.save(loader.state_dict(), os.path.join(out, f"rank{rank}.pt"))
        np.save(os.path.join(out, f"before{rank}.npy"), _rows(read))


def _elastic_resumed(path: str, out: str, world_size: int, num_workers: int) -> None:
    """A new job of `world_size` ranks × `num_workers`, every rank resumed from rank 0's saved state, read to the end of the epoch."""
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    from readers.torch import TokenmillDataset

    state = torch.load(os.path.join(out, "rank0.pt"))
    for rank in range(world_size):
        dataset = TokenmillDataset(path, rank=rank, world_size=world_size, **ELASTIC)
        dataset.resume_from(state)
        np.save(os.path.join(out, f"after{world_size}x{num_workers}-{rank}.npy"), _rows(StatefulDataLoader(dataset, batch_size=BATCH, num_workers=num_workers)))


@pytest.mark.parametrize("world_size, num_workers", [(2, 1), (3, 2)])
def test_a_state_saved_at_4_ranks_resumes_at_another_world_size_and_worker_count(clm, tmp_path, world_size, num_workers):
    from readers.torch import TokenmillDataset

    run_fresh("_elastic_saved", clm, str(tmp_path))
    run_fresh("_elastic_resumed", clm, str(tmp_path), world_size, num_workers)
    whole = {np.concatenate([e[name] for name in sorted(e)]).tobytes() for e in TokenmillDataset(clm)}
    before = [row.tobytes() for rank in range(SAVED_AT[0]) for row in np.load(tmp_path / f"before{rank}.npy")]
    after = [np.load(tmp_path / f"after{world_size}x{num_workers}-{rank}.npy") for rank in range(world_size)]
    assert len(before) == SAVED_AT[0] * STEPS * BATCH
    left = len(whole) - len(before)
    assert [len(a) for a in after] == [left // world_size] * world_size
    yielded = before + [row.tobytes() for a in after for row in a]
    assert len(set(yielded)) == len(yielded), "no example twice"
    assert set(yielded) <= whole and len(yielded) == len(whole) - left % world_size


def test_a_state_of_another_seed_split_or_corpus_is_refused(clm, unmasked_mlm):
    from readers.torch import TokenmillDataset

    state = TokenmillDataset(clm, **ELASTIC).state_dict()
    for other, differs in [
        (TokenmillDataset(clm, **{**ELASTIC, "seed": 4}), r"'seed': \(3, 4\)"),
        (TokenmillDataset(clm, "validation", **ELASTIC), r"'split': \('train', 'validation'\)"),
        (TokenmillDataset(unmasked_mlm, **ELASTIC), r"'corpus': \('\w+', '\w+'\)"),
    ]:
        with pytest.raises(ValueError, match=r"another order.*" + differs):
            other.resume_from(state)
    with pytest.raises(ValueError, match="another layout.*resume_from"):
        TokenmillDataset(clm, rank=1, world_size=2, **ELASTIC).load_state_dict(state)


def test_seeds_0_and_1_over_epochs_0_to_2_give_six_different_orders(clm):
    orders = {(seed, epoch): _epoch(clm, epoch, shuffle=True, seed=seed, window=100).tobytes() for seed in (0, 1) for epoch in (0, 1, 2)}
    assert len(set(orders.values())) == 6
