"""The ArrayRecord output: the TFRecord shards' records, deterministic bytes, verified like the other formats."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil

import pytest

from corpus_tools import IN_MEMORY, TWO_PROCESSES, build, run_cli, temporaries
from test_gcs import download, gcs, objects  # noqa: F401 — gcs is a fixture

ARGS = ("--seq-len", 64, "--num-shards", 3, "--validation-fraction", 0.1, "--formats", "tfrecord,array_record")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs):
    path = tmp_path_factory.mktemp("ar-input") / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:200]))
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory, corpus, tokenizer_path):
    return build(tmp_path_factory.mktemp("ar-out"), "--input", corpus, "--tokenizer", tokenizer_path, *ARGS)


def array_record_files(version_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(version_dir, "*", "*.array_record")))


def test_each_shard_holds_the_tfrecord_shards_records_in_order(published):
    from array_record.python.array_record_module import ArrayRecordReader

    from readers.records import iter_records

    manifest, version_dir = published
    files = array_record_files(version_dir)
    assert len(files) == 4  # 3 train shards, 1 validation
    total = 0
    for path in files:
        reader = ArrayRecordReader(path)
        records = reader.read_all()
        assert records == list(iter_records(path.replace(".array_record", ".tfrecord")))
        total += len(records)
    assert total == sum(t["examples"] for t in manifest["totals"].values()) > 0
    entries = {s["path"]: s for s in manifest["shards"] if s["format"] == "array_record"}
    assert sorted(entries) == sorted(os.path.relpath(p, version_dir) for p in files)
    tfrecord_counts = {s["path"].replace(".tfrecord", ".array_record"): s["examples"] for s in manifest["shards"] if s["format"] == "tfrecord"}
    assert {p: s["examples"] for p, s in entries.items()} == tfrecord_counts
    assert temporaries(version_dir) == []


def test_bytes_are_the_same_across_runs_and_worker_counts(published, corpus, tokenizer_path, tmp_path):
    manifest, _ = published
    digests = {s["path"]: s["sha256"] for s in manifest["shards"] if s["format"] == "array_record"}
    for name, runner in (("again", IN_MEMORY), ("two-workers", TWO_PROCESSES)):
        other, other_dir = build(tmp_path / name, "--input", corpus, "--tokenizer", tokenizer_path, *ARGS, runner=runner)
        assert {s["path"]: s["sha256"] for s in other["shards"] if s["format"] == "array_record"} == digests
        for path in array_record_files(other_dir):
            with open(path, "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == digests[os.path.relpath(path, other_dir)]


def test_verify_catches_a_flipped_byte_and_the_reader_names_the_file(published, tmp_path):
    from readers.array_record import ArrayRecordFiles
    from readers.records import CorruptShard

    manifest, version_dir = published
    copy = tmp_path / "copy"
    shutil.copytree(version_dir, copy)
    code, printed = run_cli("verify", copy)
    assert code == 0, printed
    entry = next(s for s in manifest["shards"] if s["format"] == "array_record" and s["split"] == "train")
    path = copy / entry["path"]
    data = bytearray(path.read_bytes())
    data[1000] ^= 0x01  # inside the first chunk's data
    path.write_bytes(bytes(data))
    code, printed = run_cli("verify", copy)
    assert code != 0
    assert f"{entry['path']}: sha256" in printed
    assert f"{entry['path']}: the ArrayRecord file cannot be read" in printed
    with pytest.raises(CorruptShard, match=str(path)):
        ArrayRecordFiles([str(path)], [entry["examples"]]).read(0, range(entry["examples"]))


def test_a_cut_short_shard_fails_naming_the_file(published, tmp_path):
    from readers.array_record import ArrayRecordFiles
    from readers.records import CorruptShard

    manifest, version_dir = published
    entry = next(s for s in manifest["shards"] if s["format"] == "array_record" and s["split"] == "train")
    path = tmp_path / "cut.array_record"
    path.write_bytes((open(os.path.join(version_dir, entry["path"]), "rb").read())[:-100])
    with pytest.raises(CorruptShard, match="cut.array_record"):
        ArrayRecordFiles([str(path)], [entry["examples"]]).read(0, [0])


def test_to_gcs_through_a_local_file_then_verified(gcs):
    from pipelines.verify import check_file
    from transforms.write import write_array_record

    written = write_array_record(f"{gcs}/v/train/a.array_record", f"{gcs}/v/.tmp", [[b"one", b"two"], [b"three"]])
    data = download(f"{gcs}/v/train/a.array_record")
    assert written == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert objects(f"{gcs}/v/") == ["train/a.array_record"]
    entry = {"path": "train/a.array_record", "format": "array_record", "examples": 3, **written}
    assert check_file(f"{gcs}/v", entry) == []
    assert check_file(f"{gcs}/v", {**entry, "examples": 4}) == ["train/a.array_record: 3 rows, the manifest says 4 examples"]
