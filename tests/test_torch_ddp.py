"""`TokenmillDataset` under a real `torch.distributed` (gloo) process group, with DataLoader workers in every rank."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build, sample_subset

BATCH = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, path: str, out: str, num_workers: int, shuffle: bool) -> None:
    """One rank: join the group, read one epoch through a DataLoader, save what it yielded and what len() said."""
    import torch
    import torch.distributed as dist

    from readers.torch import TokenmillDataset

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        dataset = TokenmillDataset(path, shuffle=shuffle, seed=7, window=64)
        dataset.set_epoch(1)
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=num_workers)
        rows = torch.cat([torch.cat([b[name] for name in sorted(b)], dim=1) for b in loader])
        counts = [None] * world_size
        dist.all_gather_object(counts, len(rows))
        np.savez(os.path.join(out, f"rank{rank}.npz"), rows=rows.numpy(), length=len(dataset), counts=counts)
    finally:
        dist.destroy_process_group()


def run_ranks(path: str, out, world_size: int, num_workers: int, shuffle: bool) -> list[dict]:
    """`world_size` fresh processes, one a rank, as torchrun would start them."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", f"import test_torch_ddp as t; t._rank_main({rank}, {world_size}, {port}, {path!r}, {str(out)!r}, {num_workers}, {shuffle})"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(world_size)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert all(p.returncode == 0 for p in processes), errors
    return [dict(np.load(os.path.join(out, f"rank{rank}.npz"))) for rank in range(world_size)]


def split_rows(path: str) -> list[bytes]:
    from readers.torch import TokenmillDataset

    return [np.concatenate([e[name] for name in sorted(e)]).tobytes() for e in TokenmillDataset(path, rank=0, world_size=1)]


@pytest.fixture(scope="module")
def small_input(tmp_path_factory, sample_docs):
    return sample_subset(tmp_path_factory.mktemp("small-input"), sample_docs)


@pytest.fixture(scope="module")
def corpora(small_input, tmp_path_factory):
    """Version directories of a clm corpus in 3 shards and in 1, by shard count."""
    return {n: build(tmp_path_factory.mktemp(f"clm-{n}"), "--input", small_input, "--seq-len", 64, "--num-shards", n)[1] for n in (1, 3)}


@pytest.mark.parametrize(
    "num_shards, world_size, shuffle", [(3, 2, False), (3, 2, True), (1, 4, False)], ids=["3-shards-2-ranks", "shuffled", "1-shard-4-ranks"]
)
def test_ranks_with_two_workers_each_yield_disjoint_equal_parts_of_the_split(corpora, tmp_path, num_shards, world_size, shuffle):
    version_dir = corpora[num_shards]
    whole = split_rows(version_dir)
    results = run_ranks(version_dir, tmp_path, world_size, num_workers=2, shuffle=shuffle)
    per_rank = len(whole) // world_size
    for result in results:
        assert result["length"] == per_rank == len(result["rows"])
        assert result["counts"].tolist() == [per_rank] * world_size
        assert result["rows"].dtype == np.int64
    yielded = collections.Counter(row.tobytes() for result in results for row in result["rows"])
    assert sum(yielded.values()) == len(whole) - len(whole) % world_size
    assert not yielded - collections.Counter(whole), "every example yielded once at most, and only examples of the split"
