"""A directory as `--input`: its files of known formats, sorted; recursive only with `dir/**`."""

from __future__ import annotations

import json

import pytest

from corpus_tools import IN_MEMORY, build, run_cli


@pytest.fixture
def tree(tmp_path, sample_docs):
    root = tmp_path / "inp"
    (root / "sub").mkdir(parents=True)
    for path, docs in ((root / "b.jsonl", sample_docs[:150]), (root / "a.jsonl", sample_docs[150:300]), (root / "sub" / "c.jsonl", sample_docs[300:400])):
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "README").write_text("not data\n")
    (root / "_SUCCESS").write_text("")
    return root


def test_a_directory_stands_for_its_files_of_known_formats(tree):
    from pipelines.build import match_inputs

    names = lambda pattern: [m.path[len(str(tree)) + 1 :] for m in match_inputs((pattern,))]  # noqa: E731
    assert names(str(tree)) == names(f"{tree}/") == ["a.jsonl", "b.jsonl"]
    assert names(f"{tree}/**") == ["a.jsonl", "b.jsonl", "sub/c.jsonl"]
    assert [m.path.rsplit("/", 1)[1] for m in match_inputs((str(tree),), "jsonl")] == ["README", "_SUCCESS", "a.jsonl", "b.jsonl"]


def test_a_build_of_a_directory_reads_its_files(tmp_path, tree):
    manifest, _ = build(tmp_path / "out", "--input", tree, "--seq-len", 64, "--num-shards", 1)
    assert manifest["counters"]["records_read"] == 300
    assert [f["path"].rsplit("/", 1)[1] for f in manifest["inputs"]["files"]] == ["a.jsonl", "b.jsonl"]


def test_a_directory_without_data_files_names_the_formats(tmp_path, capsys):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "README.md").write_text("hi\n")
    code, _ = run_cli("build", "--input", empty, "--output", tmp_path / "out", *IN_MEMORY)
    err = capsys.readouterr().err
    assert code == 2 and "holds no file of a known format" in err and ".jsonl" in err and "--input-format" in err
