"""A tree of damaged inputs builds anyway: every bad record counted by reason and dead-lettered."""

from __future__ import annotations

import base64
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from corpus_tools import IN_MEMORY, build

MAX_BYTES = 100_000


def _jsonl(docs) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


@pytest.fixture(scope="module")
def damaged_tree(tmp_path_factory, sample_docs):
    """Good documents mixed with every kind of damage; returns (dir, expected drops by reason, good count)."""
    root = tmp_path_factory.mktemp("damaged")
    good = sample_docs[:60]
    bad_lines = {
        "invalid_utf8": b'{"id": "bad-utf8", "text": "caf\xe9 au lait"}',
        "malformed_json": b'{"id": "cut", "text": "no closing quote}',
        "missing_text_field": b'{"id": "no-text", "body": "text under another name"}',
        "text_not_string": b'{"id": "number", "text": 42}',
        "empty_document": b'{"id": "blank", "text": "  \\n\\t "}',
        "document_too_large": json.dumps({"id": "huge", "text": "word " * (MAX_BYTES // 4)}).encode(),
        "not_a_json_object": b'["a", "list"]',
        "invalid_id": b'{"id": {"nested": 1}, "text": "a fine text"}',
    }
    lone_surrogate = b'{"id": "surrogate", "text": "half a pair \\ud800 here"}'
    lines = [json.dumps(d).encode() for d in good[:30]]
    for i, line in enumerate(list(bad_lines.values()) + [lone_surrogate]):
        lines.insert(3 * i + 1, line)
    (root / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    complete = gzip.compress(_jsonl(good[30:45]), mtime=0)
    (root / "truncated.jsonl.gz").write_bytes(complete[: int(len(complete) * 0.6)])
    (root / "corrupt.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
    zst = zstandard.ZstdCompressor().compress(_jsonl(good[45:55]))
    (root / "truncated.jsonl.zst").write_bytes(zst[: len(zst) // 2])
    (root / "complete.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(_jsonl(good[55:60])))

    text = "First sentence of doc one.\nSecond sentence.\n\nDoc two has one line.\n\n".encode() + b"Bad \xff byte here.\nMore.\n"
    (root / "bert.txt").write_bytes(text)

    table = pa.table({"id": ["p1", "p2", "p3", "p4"], "text": ["A parquet document.", None, "   ", "Another parquet document."]})
    pq.write_table(table, root / "rows.parquet", row_group_size=2)

    expected = {reason: 1 for reason in bad_lines}
    expected["invalid_utf8"] += 2  # the lone surrogate and the text file's bad document
    expected["truncated_file"] = 2
    expected["unreadable_file"] = 1
    expected["missing_text_field"] += 1  # parquet null
    expected["empty_document"] += 1  # parquet blanks
    intact_good = 30 + 5 + 2 + 2  # mixed.jsonl, complete.jsonl.zst, bert.txt, rows.parquet
    return root, expected, intact_good, bad_lines


@pytest.fixture(scope="module")
def damaged_build(tmp_path_factory, damaged_tree):
    root = damaged_tree[0]
    return build(
        tmp_path_factory.mktemp("damaged-out"),
        *[a for name in sorted(os.listdir(root)) for a in ("--input", str(root / name))],
        "--max-document-bytes", MAX_BYTES, "--seq-len", 64, "--num-shards", 2, "--validation-fraction", 0,
    )


def test_every_bad_record_is_counted_by_reason(damaged_tree, damaged_build):
    _, expected, intact_good, _ = damaged_tree
    manifest, _ = damaged_build
    c = manifest["counters"]
    assert c["documents_dropped"] == expected
    assert c["records_read"] == c["documents_used"] + c["documents_dropped_total"]
    # Whatever came out of the damaged compressed files before the damage is kept.
    assert c["documents_used"] >= intact_good
    assert manifest["totals"]["train"]["examples"] > 0


def test_bad_records_are_dead_lettered_with_their_bytes(damaged_tree, damaged_build):
    _, expected, _, bad_lines = damaged_tree
    manifest, version_dir = damaged_build
    assert {e["reason"]: e["records"] for e in manifest["errors"]} == expected
    letters = {}
    for entry in manifest["errors"]:
        with open(os.path.join(version_dir, entry["path"]), encoding="utf-8") as f:
            letters[entry["reason"]] = [json.loads(line) for line in f]
    for reason, line in bad_lines.items():
        records = [
            base64.b64decode(d["record_base64"]) if "record_base64" in d else d["record"].encode("utf-8")
            for d in letters[reason]
            if d["source"].endswith("mixed.jsonl")
        ]
        assert line in records, reason
    truncated = {os.path.basename(d["source"]) for d in letters["truncated_file"]}
    assert truncated == {"truncated.jsonl.gz", "truncated.jsonl.zst"}
    assert all(d["detail"] for d in letters["unreadable_file"])


def test_bad_records_show_in_beam_metrics(damaged_tree):
    """The same counts reach Beam's metrics, where a Dataflow user watches them."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from pipelines.build import BuildCorpus, plan_build
    from pipelines.config import BuildConfig
    from runners.local import pipeline_options, runner_for

    root, expected, _, _ = damaged_tree
    config = BuildConfig(
        inputs=tuple(str(root / n) for n in sorted(os.listdir(root))),
        output=str(root / "metrics-out"),
        max_document_bytes=MAX_BYTES,
        num_shards=1,
        validation_fraction=0,
        objective_options={"seq_len": 64},
    )
    plan = plan_build(config)
    options = pipeline_options(IN_MEMORY)
    pipeline = beam.Pipeline(runner=runner_for(options), options=options)
    pipeline | BuildCorpus(plan)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("tokenmill"))["counters"]
    totals = {}
    for c in counters:
        totals[c.key.metric.name] = totals.get(c.key.metric.name, 0) + c.committed
    assert {k.split("/", 1)[1]: v for k, v in totals.items() if k.startswith("dropped/")} == expected
