"""Planning at scale: the shard count follows the input size, and a rebuild reads only the local input files that changed."""

from __future__ import annotations

import json
import os

import pytest

from pipelines.build import input_hashes_path, plan_build
from pipelines.config import MAX_SHARDS, BuildConfig, shards_for

MiB = 1 << 20


@pytest.mark.parametrize(
    ("input_bytes", "shards"),
    [
        (0, 1),
        (2_300_000, 1),  # the sample corpus: one shard, not 64 of 6-7 examples
        (16 * MiB + 1, 2),
        (100_000_000, 6),  # a shard per 16 MiB below 256 MiB of input
        (400_000_000, 16),
        (4096 * MiB, 16),  # 16 shards of 256 MiB
        (1 << 40, 4096),  # 1 TiB: a shard per 256 MiB
        (1 << 60, MAX_SHARDS),
    ],
)
def test_the_shard_count_follows_the_input_size(input_bytes, shards):
    assert shards_for(input_bytes) == shards


def test_flags_win_and_validation_gets_its_share():
    assert BuildConfig().shard_counts(1 << 40) == {"train": 4096, "validation": 41}  # 1 % of 1 TiB is 10 GiB
    assert BuildConfig(num_shards=64).shard_counts(1 << 40) == {"train": 64, "validation": 1}
    assert BuildConfig(num_shards=64, num_validation_shards=5).shard_counts(10) == {"train": 64, "validation": 5}
    assert BuildConfig(validation_fraction=0).shard_counts(1 << 40) == {"train": 4096}


def test_the_sample_corpus_is_planned_as_one_shard_per_split_and_the_count_is_fingerprinted(tmp_path, tokenizer_path):
    plan = plan_build(BuildConfig(tokenizer=tokenizer_path, output=str(tmp_path / "a")))
    assert plan.num_shards == {"train": 1, "validation": 1}
    assert plan.static_manifest()["config"]["num_shards_by_split"] == plan.num_shards
    again = plan_build(BuildConfig(tokenizer=tokenizer_path, output=str(tmp_path / "b")))
    other = plan_build(BuildConfig(tokenizer=tokenizer_path, output=str(tmp_path / "c"), num_shards=2))
    assert again.fingerprint == plan.fingerprint
    assert other.fingerprint != plan.fingerprint


def test_a_replan_reuses_the_recorded_hash_of_an_unchanged_file_and_rehashes_a_changed_one(tmp_path, tokenizer_path, sample_docs):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        with open(inputs / f"part-{i}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(d) + "\n" for d in sample_docs[i * 100 : (i + 1) * 100])
    config = BuildConfig(inputs=(f"{inputs}/*.jsonl",), tokenizer=tokenizer_path, output=str(tmp_path / "out"))
    first = {e["path"]: e["sha256"] for e in plan_build(config).inputs}
    record_path = input_hashes_path(config.inputs)
    with open(record_path) as f:
        record = json.load(f)
    assert {p: r["sha256"] for p, r in record.items()} == first

    unchanged = str(inputs / "part-0.jsonl")
    record[unchanged]["sha256"] = "recorded"  # what the plan reuses, if it does not read the file again
    with open(record_path, "w") as f:
        json.dump(record, f)
    changed = inputs / "part-1.jsonl"
    changed.write_text(changed.read_text().replace("a", "b"))
    stat = os.stat(changed)
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    second = {e["path"]: e["sha256"] for e in plan_build(config).inputs}
    assert second[unchanged] == "recorded"
    assert second[str(changed)] not in (first[str(changed)], "recorded") and len(second[str(changed)]) == 64
    assert second[str(inputs / "part-2.jsonl")] == first[str(inputs / "part-2.jsonl")]
    with open(record_path) as f:
        assert json.load(f)[str(changed)]["sha256"] == second[str(changed)]
