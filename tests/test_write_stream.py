"""A shard is written by merging its sorted runs as it goes: the same bytes however its examples arrive, never a partial file under its final name."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from schemas import FLOAT, Feature, Schema
from transforms.codec import arrow_table, frame_tfrecords, serialize_examples
from transforms.examples import KeyedExamples, merge_sorted, store_runs
from transforms.transit import Loaded
from transforms.write import WriteShard, parquet_rows_per_group

SCHEMA = Schema("test", (Feature("input_ids", 2048, counts_tokens=True), Feature("weights", 16, FLOAT)))
ROWS = 2500  # three Parquet row groups, several TFRecord chunks


def random_examples(rng: np.random.Generator, rows: int) -> KeyedExamples:
    keys = rng.permutation(np.arange(rows, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    ids = rng.integers(1, 30000, size=(rows, 2048), dtype=np.int32)
    ids[:, rng.integers(100, 2048) :] = 0
    return KeyedExamples(keys, {"input_ids": ids, "weights": rng.random((rows, 16), dtype=np.float32)})


def stored_runs(directory: str, examples: KeyedExamples, runs: int, slice_bytes: int) -> list:
    """The examples cut into `runs` parts, each stored sorted in slices (as the examples step stores them)."""
    cuts = np.linspace(0, examples.keys.size, runs + 1).astype(int)
    return [run for i in range(runs) for _, run in store_runs(directory, [(i, [examples.slice(cuts[i], cuts[i + 1])])], slice_bytes)]


def write_shard(version_dir, runs, compression: str, **limits) -> dict[str, bytes]:
    """Write one shard in both formats; the files' bytes by format."""
    writer = WriteShard(SCHEMA, str(version_dir), ("tfrecord", "parquet"), compression, {"train": 1}, 0, **limits)
    written = list(writer.process((("train", 0), runs)))
    assert [w["examples"] for w in written] == [ROWS, ROWS]
    return {w["format"]: (version_dir / w["path"]).read_bytes() for w in written}


def in_memory_bytes(examples: KeyedExamples, compression: str) -> dict[str, bytes]:
    """The shard written from all its examples at once: the TFRecord file in one piece, Parquet by pyarrow from one table."""
    import zlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = examples.in_key_order()
    tfrecord = frame_tfrecords(serialize_examples(ordered.features, SCHEMA))
    if compression == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        tfrecord = compressor.compress(tfrecord) + compressor.flush()
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, SCHEMA.arrow_schema(), compression="zstd", use_dictionary=False, write_statistics=False) as writer:
        writer.write_table(arrow_table(ordered.features, SCHEMA), row_group_size=parquet_rows_per_group(SCHEMA))
    return {"tfrecord": tfrecord, "parquet": sink.getvalue().to_pybytes()}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_shard_has_the_same_bytes_from_one_run_or_many_merged_in_rounds_and_in_tiny_slices(tmp_path, compression):
    examples = random_examples(np.random.default_rng(0), ROWS)
    expected = in_memory_bytes(examples, compression)
    one_run = write_shard(tmp_path / "one", stored_runs(str(tmp_path), examples, 1, 1 << 30), compression)
    many = write_shard(tmp_path / "many", stored_runs(str(tmp_path), examples, 9, 20_000), compression, slice_bytes=50_000, fan_in=2)
    assert one_run == expected
    assert many == expected


def test_merge_gives_every_example_once_in_key_order_whatever_the_cut():
    rng = np.random.default_rng(1)
    examples = KeyedExamples(rng.permutation(1000).astype(np.uint64) * np.uint64(7), {"x": rng.integers(0, 9, size=(1000, 3), dtype=np.int32)})

    for runs, rows, most in ((1, 1000, 1000), (5, 7, 1000), (13, 1, 4), (40, 3, 1), (40, 30, 50)):
        cuts = np.linspace(0, 1000, runs + 1).astype(int)
        sorted_runs = [[Loaded(p) for p in examples.slice(a, b).in_key_order().slices(rows)] for a, b in zip(cuts[:-1], cuts[1:])]
        batches = list(merge_sorted(sorted_runs, most))
        assert max(b.keys.size for b in batches) <= most
        merged = KeyedExamples.concat(batches)
        expected = examples.in_key_order()
        assert np.array_equal(merged.keys, expected.keys) and np.array_equal(merged.features["x"], expected.features["x"])

    twice = [[Loaded(examples.slice(0, 10).in_key_order())], [Loaded(examples.slice(5, 20).in_key_order())]]
    with pytest.raises(ValueError, match="duplicate example keys"):
        list(merge_sorted(twice, 100))


def test_runs_are_stored_in_key_order_in_slices_of_about_the_size_asked(tmp_path):
    examples = random_examples(np.random.default_rng(2), 300)
    [(key, run)] = store_runs(str(tmp_path), [("k", [examples.slice(0, 100), examples.slice(100, 300)])], slice_bytes=100_000)
    pieces = [s.unpack() for s in run]
    assert key == "k" and len(pieces) == -(-300 // (100_000 // (examples.nbytes // 300)))
    assert all(p.nbytes <= 100_000 for p in pieces)
    keys = np.concatenate([p.keys for p in pieces])
    assert np.array_equal(keys, np.sort(examples.keys))


def files_under(directory) -> list[str]:
    """Every file under `directory`, relative to it."""
    return sorted(os.path.relpath(os.path.join(d, name), directory) for d, _, names in os.walk(directory) for name in names)


def shard_temporaries(version_dir) -> list[str]:
    """The shard names the files under `version_dir/.tmp/` are temporaries of (a temporary is `<uuid>-<target name>`)."""
    return sorted(name.split("-", 1)[1] for name in os.listdir(version_dir / ".tmp"))


class Failing:
    """A slice whose transit file is lost: unpacking it fails, as a killed or broken read would."""

    def unpack(self):
        raise OSError("transit file lost")


def test_a_write_that_fails_half_way_leaves_no_file_under_a_shard_name(tmp_path):
    examples = random_examples(np.random.default_rng(3), ROWS)
    [run] = stored_runs(str(tmp_path), examples, 1, 200_000)
    version_dir = tmp_path / "version"
    with pytest.raises(OSError, match="transit file lost"):
        write_shard(version_dir, [run[: len(run) // 2] + [Failing()] + run[len(run) // 2 :]], "none")
    assert all(f.startswith(".tmp/") for f in files_under(version_dir))
    assert shard_temporaries(version_dir) == ["test-00000-of-00001.parquet", "test-00000-of-00001.tfrecord"]


def test_a_writer_killed_half_way_leaves_no_file_under_a_shard_name(tmp_path):
    """SIGKILL to a process writing a shard, once its temporary file (under the version's `.tmp/` prefix) has bytes."""
    examples = random_examples(np.random.default_rng(4), ROWS)
    runs = stored_runs(str(tmp_path), examples, 3, 200_000)
    version_dir = tmp_path / "version"
    with open(tmp_path / "runs.pickle", "wb") as f:
        pickle.dump((SCHEMA, runs), f)
    script = (
        "import pickle, sys\n"
        "from transforms.write import WriteShard\n"
        "schema, runs = pickle.load(open(sys.argv[1], 'rb'))\n"
        "list(WriteShard(schema, sys.argv[2], ('tfrecord', 'parquet'), 'gzip', {'train': 1}, 0).process((('train', 0), runs)))\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "runs.pickle"), str(version_dir)], cwd=repo)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if any(os.path.getsize(version_dir / f) for f in files_under(version_dir)):
                break
            time.sleep(0.001)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the writer finished before it was killed"
    assert all(f.startswith(".tmp/") for f in files_under(version_dir)), files_under(version_dir)
    assert shard_temporaries(version_dir) == ["test-00000-of-00001.parquet", "test-00000-of-00001.tfrecord.gz"]
