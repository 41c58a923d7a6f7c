"""Memory of local runs: few malloc arenas in every process, freed heap pages handed back to the system by workers."""

from __future__ import annotations

import os

import pytest

from corpus_tools import ask_workers
from runners.local import MALLOC_ARENAS, lean_memory
from transforms.memory import _malloc_trim, release_free_memory


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="glibc tuning applies on Linux only")
def test_worker_processes_get_few_malloc_arenas_and_the_caller_environment_is_restored(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert ask_workers(tmp_path, lambda: os.environ.get("MALLOC_ARENA_MAX", "unset")) == {MALLOC_ARENAS}
    assert "MALLOC_ARENA_MAX" not in os.environ


def test_a_user_setting_of_malloc_arenas_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "7")
    with lean_memory():
        assert os.environ["MALLOC_ARENA_MAX"] == "7"
    assert os.environ["MALLOC_ARENA_MAX"] == "7"


def _free_240_mb_on_the_heap() -> list:
    blocks = [bytearray(60_000) for _ in range(4000)]  # blocks malloc keeps on its heap
    return blocks[::50]  # a few survivors pin the heap's top, so it cannot simply shrink


@pytest.mark.skipif(_malloc_trim() is None or not os.path.exists("/proc/self/statm"), reason="needs glibc and /proc")
def test_freed_heap_memory_goes_back_to_the_system():
    keep = _free_240_mb_on_the_heap()
    before = resident_mb()
    release_free_memory()
    assert resident_mb() < before - 150
    assert len(keep) == 80
