"""Memory of local runs: few malloc arenas in every process, freed heap pages handed back to the system by workers."""

from __future__ import annotations

import os

import apache_beam as beam
import pytest

from runners.local import MALLOC_ARENAS, lean_memory, run
from transforms.memory import _malloc_trim, release_free_memory


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="glibc tuning applies on Linux only")
def test_worker_processes_get_few_malloc_arenas_and_the_caller_environment_is_restored(tmp_path, monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    def record_environment(element, directory=str(tmp_path)):  # a local function: pickled by value for the workers
        with open(os.path.join(directory, f"{os.getpid()}-{element}"), "w") as f:
            f.write(os.environ.get("MALLOC_ARENA_MAX", "unset"))

    run(lambda p, _: p | beam.Create(range(4)) | beam.Map(record_environment), ["--direct_num_workers=2"], show_progress=False)
    seen = {(tmp_path / name).read_text() for name in os.listdir(tmp_path)}
    assert seen == {MALLOC_ARENAS}
    assert {name.split("-")[0] for name in os.listdir(tmp_path)} - {str(os.getpid())}, "ran in worker processes"
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
