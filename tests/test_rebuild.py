"""`tokenmill rebuild`: skip when nothing changed, new versions when something did, pruning, and a kill mid-write."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, run_cli, temporaries

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_jsonl(path, docs) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")


@pytest.fixture
def inputs(tmp_path, sample_docs):
    """Three small JSONL files of real documents; tests change them like a nightly crawl would."""
    root = tmp_path / "inputs"
    root.mkdir()
    for i in range(3):
        write_jsonl(root / f"part-{i}.jsonl", sample_docs[i * 150 : (i + 1) * 150])
    return root


def rebuild(output, inputs, tokenizer, *args, runner=IN_MEMORY):
    return run_cli("rebuild", "--input", f"{inputs}/*.jsonl", "--tokenizer", tokenizer, "--output", output, "--seq-len", 64, "--num-shards", 2, "--no-progress", *args, *runner)


def latest(output) -> str:
    return (output / "LATEST").read_text().strip()


def versions(output) -> dict[str, bool]:
    """Every version directory, and whether it is complete."""
    root = output / "versions"
    return {name: (root / name / "manifest.json").exists() for name in sorted(os.listdir(root))}


def verify(path) -> tuple[int, str]:
    return run_cli("verify", path)


def test_a_second_rebuild_without_changes_runs_no_pipeline(tmp_path, inputs, tokenizer_path, monkeypatch):
    output = tmp_path / "out"
    code, printed = rebuild(output, inputs, tokenizer_path)
    assert code == 0, printed
    first = latest(output)

    def no_pipeline(*args, **kwargs):
        raise AssertionError("a pipeline ran although nothing changed")

    monkeypatch.setattr("runners.local.run", no_pipeline)
    code, printed = rebuild(output, inputs, tokenizer_path)
    assert code == 0, printed
    assert printed.startswith(f"Up to date: {first} has the same fingerprint") and "no pipeline ran" in printed
    assert latest(output) == first and versions(output) == {first: True}


def test_a_changed_input_file_makes_a_new_version_and_keep_prunes_the_oldest(tmp_path, inputs, tokenizer_path, sample_docs):
    output = tmp_path / "out"
    names = []
    for night in range(3):
        if night:
            write_jsonl(inputs / "part-1.jsonl", sample_docs[1000 + night * 50 : 1000 + night * 50 + 150])
        code, printed = rebuild(output, inputs, tokenizer_path, "--keep", 2)
        assert code == 0, printed
        assert night == 0 or "Rebuilding: the inputs, tokenizer, config or code changed" in printed
        names.append(latest(output))
        assert names[-1] not in names[:-1]
        assert json.loads((output / "versions" / names[-1] / "manifest.json").read_text())["counters"]["records_read"] == 450
    assert versions(output) == {names[1]: True, names[2]: True}
    assert sorted(os.listdir(output)) == ["LATEST", "versions"]
    assert temporaries(output) == []
    for name in names[1:]:
        assert verify(output / "versions" / name)[0] == 0


def test_a_damaged_published_version_is_rebuilt_rather_than_called_up_to_date(tmp_path, inputs, tokenizer_path):
    output = tmp_path / "out"
    assert rebuild(output, inputs, tokenizer_path)[0] == 0
    first = latest(output)
    os.remove(output / "versions" / first / "train" / "clm-00001-of-00002.parquet")
    code, printed = rebuild(output, inputs, tokenizer_path)
    assert code == 0 and f"Rebuilding: {first} is damaged (train/clm-00001-of-00002.parquet: missing)" in printed
    assert latest(output) != first and verify(output)[0] == 0


def test_build_never_deletes_a_version(tmp_path, inputs, tokenizer_path):
    output = tmp_path / "out"
    for seed in range(4):
        code, printed = run_cli("build", "--input", f"{inputs}/*.jsonl", "--tokenizer", tokenizer_path, "--output", output, "--seq-len", 64, "--num-shards", 1, "--seed", seed, "--no-progress", *IN_MEMORY)
        assert code == 0, printed
    assert len(versions(output)) == 4


def _version_files(directory) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(directory) for f in files]


def test_a_rebuild_killed_while_writing_shards_leaves_latest_intact(tmp_path, inputs, tokenizer_path, sample_corpus_path):
    """SIGKILL to the whole process tree of a 2-process rebuild once its shard files appear."""
    output = tmp_path / "out"
    assert rebuild(output, inputs, tokenizer_path)[0] == 0
    before = latest(output)
    before_manifest = (output / "versions" / before / "manifest.json").read_bytes()

    big = tmp_path / "big"
    big.mkdir()
    for copy in range(2):
        os.symlink(sample_corpus_path, big / f"copy-{copy}.jsonl")
    args = ["--input", f"{big}/*.jsonl", "--tokenizer", tokenizer_path, "--output", output, "--seq-len", 32, "--num-shards", 96, "--no-progress"]
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "rebuild", *map(str, args), *TWO_PROCESSES],
        cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    partial = None
    try:
        deadline = time.monotonic() + 40
        while partial is None and process.poll() is None and time.monotonic() < deadline:
            for name, complete in versions(output).items():
                if name != before and not complete and any("/train/" in p for p in _version_files(output / "versions" / name)):
                    partial = name
            time.sleep(0.01)
    finally:
        tree = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        os.killpg(process.pid, signal.SIGKILL)
        for child in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
        process.wait()
        assert psutil.wait_procs(tree, timeout=10)[1] == []
    assert partial is not None, f"no shard was seen being written (exit code {process.returncode})"
    assert tree, "the rebuild should have had worker processes"
    assert versions(output) == {before: True, partial: False}

    assert latest(output) == before
    assert (output / "versions" / before / "manifest.json").read_bytes() == before_manifest
    code, report = verify(output)
    assert code == 0 and report.startswith(f"OK: {output / 'versions' / before}")

    code, printed = rebuild(output, inputs, tokenizer_path, "--num-shards", 3)
    assert code == 0, printed
    after = latest(output)
    assert versions(output) == {before: True, after: True}
    assert verify(output)[0] == 0


def test_retention_never_deletes_latest_the_current_run_or_a_run_in_progress():
    from transforms.manifest import Retention, VersionDir, versions_to_delete

    started = 1000.0
    found = [
        VersionDir("v1", True, completed_at=10, last_write=10),
        VersionDir("v2", True, completed_at=20, last_write=20),
        VersionDir("v3", True, completed_at=30, last_write=30),
        VersionDir("v4", True, completed_at=40, last_write=40),
        VersionDir("killed", False, completed_at=0, last_write=500),
        VersionDir("in-progress", False, completed_at=0, last_write=1001),
    ]
    assert versions_to_delete(found, latest="v4", current="v4", retention=Retention(2, started)) == ["killed", "v1", "v2"]
    # LATEST pointed back at an old version by hand: it stays, beyond the count.
    assert versions_to_delete(found, latest="v1", current="v4", retention=Retention(2, started)) == ["killed", "v2"]
    assert versions_to_delete(found, latest="v4", current="v4", retention=Retention(10, started)) == ["killed"]


def test_two_builds_of_one_config_in_the_same_second_get_two_versions(tmp_path, inputs, tokenizer_path, monkeypatch):
    """Version names carry the start time to the second; a second build in that second must not collide."""
    import pipelines.build

    monkeypatch.setattr(pipelines.build, "utc_now", lambda: "2026-11-27T03:00:00Z")
    for _ in range(2):
        code, printed = run_cli("build", "--output", tmp_path / "out", "--input", inputs / "*.jsonl", "--tokenizer", tokenizer_path, "--no-progress", *IN_MEMORY)
        assert code == 0, printed
    names = sorted(os.listdir(tmp_path / "out" / "versions"))
    assert len(names) == 2 and names[1] == names[0] + ".2"
    assert (tmp_path / "out" / "LATEST").read_text().strip() == names[1]
