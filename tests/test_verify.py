"""`tokenmill verify` and the verification a build runs before it publishes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from corpus_tools import IN_MEMORY, build, run_cli, temporaries

TFRECORD = "train/clm-00001-of-00002.tfrecord"
PARQUET = "train/clm-00000-of-00002.parquet"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs):
    """150 documents and one malformed line, so the version has shards of both formats and a dead-letter file."""
    root = tmp_path_factory.mktemp("verify-input")
    lines = [json.dumps(d) for d in sample_docs[:150]] + ['{"id": "cut", "text": "no closing quote}']
    (root / "docs.jsonl").write_text("\n".join(lines) + "\n")
    return root / "docs.jsonl"


@pytest.fixture(scope="module")
def published(tmp_path_factory, corpus, tokenizer_path):
    output = tmp_path_factory.mktemp("verify-out")
    manifest, version_dir = build(output, "--input", corpus, "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", 2, "--validation-fraction", 0.1)
    assert manifest["errors"], "the fixture should have a dead-letter file"
    return output, version_dir


@pytest.fixture
def copy(published, tmp_path):
    """A private copy of the published output root, to damage."""
    output, _ = published
    shutil.copytree(output, tmp_path / "out", symlinks=True)
    latest = (tmp_path / "out" / "LATEST").read_text().strip()
    return tmp_path / "out", tmp_path / "out" / "versions" / latest


def flip_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_good_version_verifies_from_the_root_and_from_its_directory(published):
    output, version_dir = published
    for path in (output, version_dir):
        code, printed = run_cli("verify", path)
        assert code == 0, printed
        assert printed.startswith(f"OK: {version_dir}: 8 files")


@pytest.mark.parametrize("name, problem", [(TFRECORD, "the record's CRC does not match"), (PARQUET, "sha256")])
def test_one_flipped_byte_fails_naming_the_file(copy, name, problem):
    output, version_dir = copy
    flip_byte(version_dir / name)
    code, printed = run_cli("verify", output)
    assert code == 1
    lines = printed.splitlines()
    assert lines[0] == f"FAILED: {version_dir}: " + ("2 problems" if name == TFRECORD else "1 problem")
    assert all(line.startswith(f"  {name}: ") for line in lines[1:])
    assert any(problem in line for line in lines[1:])


def test_a_deleted_shard_fails_naming_the_file(copy):
    output, version_dir = copy
    os.remove(version_dir / PARQUET)
    code, printed = run_cli("verify", output)
    assert code == 1 and printed.splitlines()[1:] == [f"  {PARQUET}: missing"]


def test_a_truncated_tfrecord_and_a_damaged_dead_letter_file_are_found(copy):
    output, version_dir = copy
    shard = version_dir / TFRECORD
    shard.write_bytes(shard.read_bytes()[:-3])
    errors = version_dir / "errors" / "malformed_json.jsonl"
    errors.write_bytes(errors.read_bytes() + b'{"extra": "line"}\n')
    code, printed = run_cli("verify", output)
    assert code == 1
    assert "do not make a whole record (truncated)" in printed
    assert "errors/malformed_json.jsonl: 2 lines, the manifest says 1 records" in printed


def test_a_shard_left_out_of_the_manifest_is_found(copy):
    output, version_dir = copy
    manifest = json.loads((version_dir / "manifest.json").read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["path"] != TFRECORD]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    code, printed = run_cli("verify", version_dir)
    assert code == 1 and printed.splitlines()[1:] == [f"  {TFRECORD}: not listed in manifest.json"]


def test_gzip_tfrecords_are_checked_inside_the_compression(tmp_path, corpus, tokenizer_path):
    _, version_dir = build(tmp_path / "gz", "--input", corpus, "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", 1, "--validation-fraction", 0, "--compression", "gzip", "--formats", "tfrecord")
    assert run_cli("verify", version_dir)[0] == 0
    shard = os.path.join(version_dir, "train", "clm-00000-of-00001.tfrecord.gz")
    with open(shard, "rb") as f:
        data = f.read()
    with open(shard, "wb") as f:
        f.write(data[: len(data) // 2])
    code, printed = run_cli("verify", version_dir)
    assert code == 1 and "train/clm-00000-of-00001.tfrecord.gz: the gzip stream ends early (truncated)" in printed


def test_a_shard_damaged_after_writing_stops_the_build_before_it_publishes(tmp_path, corpus, tokenizer_path, monkeypatch):
    """Storage that loses a byte between write and publish: the build fails, LATEST stays where it was."""
    import transforms.storage

    output = tmp_path / "out"
    _, first = build(output, "--input", corpus, "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", 2)
    commit = transforms.storage.AtomicFile.commit

    def commit_then_damage(self):
        written = commit(self)
        if self.path.endswith(".tfrecord") and written["bytes"]:  # an empty shard has no byte to lose
            flip_byte(type(output)(self.path))
        return written

    monkeypatch.setattr(transforms.storage.AtomicFile, "commit", commit_then_damage)
    with pytest.raises(Exception, match=r"train/clm-0000\d-of-00002\.tfrecord: sha256 .* \[while running 'BuildCorpus/VerifyShards'\]"):
        run_cli("build", "--output", output, "--input", corpus, "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", 2, "--seed", 1, "--no-progress", *IN_MEMORY)
    assert (output / "LATEST").read_text().strip() == os.path.basename(first)
    assert sorted(os.path.exists(output / "versions" / v / "manifest.json") for v in os.listdir(output / "versions")) == [False, True]


def test_publish_refuses_a_version_with_a_shard_missing(tmp_path, published):
    from transforms.manifest import IncompleteVersion, Publish

    _, version_dir = published
    manifest = json.loads(open(os.path.join(version_dir, "manifest.json")).read())
    static = {k: manifest[k] for k in ("config", "objective")}
    publish = Publish(str(tmp_path), "v", static, objective=None)
    with pytest.raises(IncompleteVersion, match="1 shards were not written"):
        list(publish.process(None, [], manifest["shards"][1:], []))
    assert os.listdir(tmp_path) == []


def test_files_the_manifest_does_not_list_are_found(copy):
    """A shard of another shard count (a rerun of a failed version) or a stray file would be read by a glob."""
    output, version_dir = copy
    (version_dir / "train" / "clm-00004-of-00009.tfrecord").write_bytes(b"an old shard")
    (version_dir / ".tmp").mkdir()
    (version_dir / ".tmp" / "transit-0").write_bytes(b"left over")
    code, printed = run_cli("verify", output)
    assert code == 1
    assert printed.splitlines()[1:] == ["  .tmp/transit-0: not listed in manifest.json", "  train/clm-00004-of-00009.tfrecord: not listed in manifest.json"]


def test_a_published_version_holds_no_temporary_and_clean_removes_a_killed_publish_leftover(copy):
    """Publish deletes the `.tmp/` prefix after LATEST; a publish killed before that leaves `LATEST`'s temporary there, which `--clean` removes."""
    output, version_dir = copy
    assert temporaries(output) == []
    (version_dir / ".tmp").mkdir()
    (version_dir / ".tmp" / "0123abcd-LATEST").write_text(f"{version_dir.name}\n")
    assert run_cli("verify", output) == (1, f"FAILED: {version_dir}: 1 problem\n  .tmp/0123abcd-LATEST: not listed in manifest.json\n")
    code, printed = run_cli("verify", output, "--clean")
    assert code == 0, printed
    assert printed.splitlines()[0] == "Removed 0 incomplete version(s)" and printed.splitlines()[1].startswith(f"OK: {version_dir}: 8 files")
    assert temporaries(output) == []
