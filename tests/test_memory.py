"""Memory of local runs: glibc's malloc tuned for the launcher and every worker process, a user's settings first."""

from __future__ import annotations

import os

import pytest

from corpus_tools import ask_workers
from runners.local import WORKER_MALLOC, lean_memory

linux_only = pytest.mark.skipif(not os.uname().sysname == "Linux", reason="glibc tuning applies on Linux only")


@linux_only
def test_worker_processes_get_the_malloc_tuning_and_the_caller_environment_is_restored(tmp_path, monkeypatch):
    for name in WORKER_MALLOC:
        monkeypatch.delenv(name, raising=False)
    seen = ask_workers(tmp_path, lambda: " ".join(os.environ.get(name, "unset") for name in sorted(WORKER_MALLOC)))
    assert seen == {" ".join(WORKER_MALLOC[name] for name in sorted(WORKER_MALLOC))}
    assert not set(WORKER_MALLOC) & set(os.environ)


@linux_only
@pytest.mark.parametrize("name", sorted(WORKER_MALLOC))
def test_a_user_setting_of_any_malloc_variable_wins(monkeypatch, name):
    for other in WORKER_MALLOC:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "7")
    with lean_memory():
        assert os.environ[name] == "7"
        assert all(os.environ[other] == value for other, value in WORKER_MALLOC.items() if other != name)
    assert os.environ[name] == "7"
    assert not set(WORKER_MALLOC) - {name} & set(os.environ)
