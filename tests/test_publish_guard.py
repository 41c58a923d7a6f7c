"""The publish guard: a build that would publish an empty split or drop too much fails in one line, publishes nothing, keeps LATEST."""

from __future__ import annotations

import json
import os

import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, run_cli


def write_jsonl(path, records) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return str(path)


@pytest.fixture
def good(tmp_path, sample_docs) -> str:
    return write_jsonl(tmp_path / "good.jsonl", sample_docs[:400])


@pytest.fixture
def renamed(tmp_path, sample_docs) -> str:
    """The same documents after an upstream schema change: the text is under `body`."""
    return write_jsonl(tmp_path / "renamed.jsonl", [{"body": d["text"], "url": f"https://example.org/{i}"} for i, d in enumerate(sample_docs[:400])])


def tokenmill(capsys, command, output, corpus, *args, runner=IN_MEMORY) -> tuple[int, str]:
    code, _ = run_cli(command, "--input", corpus, "--output", output, "--seq-len", 64, "--num-shards", 2, "--no-progress", *args, *runner)
    return code, capsys.readouterr().err


def published_files(output) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), output) for d, _, files in os.walk(output) for f in files if "/errors/" not in os.path.join(d, f))


def test_a_wrong_text_field_names_the_field_to_pass_and_publishes_nothing(tmp_path, capsys, renamed):
    output = tmp_path / "out"
    code, err = tokenmill(capsys, "build", output, renamed)
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("tokenmill: error: not publishing ")
    assert line.endswith("400 of 400 records dropped as missing_text_field (over --max-drop-fraction 0.5): no record has field 'text'; fields seen: body, url — pass --text-field body")
    assert not (output / "LATEST").exists() and published_files(output) == []
    (version,) = os.listdir(output / "versions")
    assert os.listdir(output / "versions" / version) == ["errors"], "the dead letters stay, for a look"

    assert tokenmill(capsys, "build", output, renamed, "--text-field", "body")[0] == 0


def test_a_refused_rebuild_leaves_latest_where_it_was(tmp_path, capsys, good, renamed):
    """The nightly case, with worker processes (the refusal crosses a process boundary as traceback text)."""
    output = tmp_path / "out"
    assert tokenmill(capsys, "rebuild", output, good)[0] == 0
    before = (output / "LATEST").read_text()
    files_before = published_files(output)
    code, err = tokenmill(capsys, "rebuild", output, renamed, runner=TWO_PROCESSES)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "pass --text-field body" in err, err[-2000:]
    assert (output / "LATEST").read_text() == before
    assert published_files(output) == files_before


def test_an_all_dropped_build_names_the_reason_and_its_fix(tmp_path, capsys):
    broken = write_jsonl(tmp_path / "broken.jsonl", [{"text": 7, "id": i} for i in range(30)])
    code, err = tokenmill(capsys, "build", tmp_path / "out", broken)
    (line,) = err.strip().splitlines()
    assert code == 1 and line.endswith("30 of 30 records dropped as text_not_string (over --max-drop-fraction 0.5): pass --text-field naming a string field")


def test_a_drop_share_over_the_threshold_is_refused_and_the_flag_raises_it(tmp_path, capsys, sample_docs):
    """300 good documents, 400 without text: 57% dropped."""
    mixed = write_jsonl(tmp_path / "mixed.jsonl", sample_docs[:300] + [{"title": "no text", "id": f"x{i}"} for i in range(400)])
    output = tmp_path / "out"
    code, err = tokenmill(capsys, "build", output, mixed)
    assert code == 1 and "400 of 700 records dropped as missing_text_field (over --max-drop-fraction 0.5): those records have no field 'text'; fields seen: title, id — pass --text-field title" in err
    assert not (output / "LATEST").exists()
    code, err = tokenmill(capsys, "build", output, mixed, "--max-drop-fraction", "0.6")
    assert code == 0, err
    manifest = json.loads(next((output / "versions").glob("*/manifest.json")).read_text())
    assert manifest["counters"]["documents_dropped"] == {"missing_text_field": 400}


def test_an_empty_train_split_is_refused(tmp_path, capsys):
    """No drops, yet no example: mlm_nsp makes no pair from documents of one sentence."""
    single = write_jsonl(tmp_path / "single.jsonl", [{"text": f"Only one sentence here, number {i}.", "id": i} for i in range(40)])
    code, err = run_cli("build", "--input", single, "--output", tmp_path / "out", "--objective", "mlm_nsp", "--seq-len", 64, "--num-shards", 1, "--no-progress", *IN_MEMORY)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and line.endswith("train would be empty: 40 documents made no mlm_nsp example; check that they are long enough for the objective's lengths")
    assert not (tmp_path / "out" / "LATEST").exists()
