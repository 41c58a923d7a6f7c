"""readers.grain: random access over ArrayRecord or Parquet, a global shuffle per epoch, per-process slices, exact resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build, read_tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs, tokenizer_path):
    root = tmp_path_factory.mktemp("grain")
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:300]))
    manifest, version_dir = build(
        root / "out", "--input", root / "docs.jsonl", "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", 3,
        "--validation-fraction", 0.1, "--formats", "tfrecord,parquet,array_record",
    )  # fmt: skip
    return version_dir, manifest


def batches(ds, key="input_ids") -> np.ndarray:
    return np.concatenate([b[key] for b in ds])


@pytest.mark.parametrize("fmt", ["array_record", "parquet"])
def test_the_source_gives_the_splits_examples_by_index(corpus, fmt):
    from readers.grain import SplitSource

    version_dir, manifest = corpus
    source = SplitSource(version_dir, "train", fmt)
    expected = read_tf(version_dir, manifest)
    assert len(source) == manifest["totals"]["train"]["examples"]
    order = np.random.default_rng(0).permutation(len(source))
    got = source.read_batch(order)
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values[order])
        assert got[name].dtype == np.int32
    np.testing.assert_array_equal(source[7]["positions"], expected["positions"][7])


def test_four_processes_read_equal_disjoint_slices_of_each_epoch(corpus):
    from readers.grain import grain_dataset

    version_dir, manifest = corpus
    total = manifest["totals"]["train"]["examples"]
    everything = read_tf(version_dir, manifest)["input_ids"].astype(np.int32)
    ordered = [batches(grain_dataset(version_dir, batch_size=4, shuffle=False, process_index=i, process_count=4)) for i in range(4)]
    per_process = total // 4 // 4 * 4
    assert {len(p) for p in ordered} == {per_process}
    np.testing.assert_array_equal(np.concatenate(ordered), np.concatenate([everything[i * (total // 4) :][:per_process] for i in range(4)]))
    for epoch in (0, 1):
        shuffled = [batches(grain_dataset(version_dir, batch_size=4, seed=9, epoch=epoch, process_index=i, process_count=4)) for i in range(4)]
        rows = [bytes(r) for r in np.concatenate(shuffled)]
        assert len(rows) == 4 * per_process and len(set(rows)) == len(rows)
        assert set(rows) <= {bytes(r) for r in everything}
    two = batches(grain_dataset(version_dir, batch_size=4, seed=9, num_epochs=2, process_index=0, process_count=1))
    first, second = two[: len(two) // 2], two[len(two) // 2 :]
    np.testing.assert_array_equal(second, batches(grain_dataset(version_dir, batch_size=4, seed=9, epoch=1, process_index=0, process_count=1)))
    assert not np.array_equal(first, second)


RESUME = """
import json, sys
import numpy as np
from readers.grain import grain_dataset
path, state_file, mode, out = sys.argv[1:]
iterator = iter(grain_dataset(path, batch_size=4, seed=11, num_epochs=3, process_index=1, process_count=2))
if mode == "save":
    for _ in range(7):
        next(iterator)
    open(state_file, "w").write(json.dumps(iterator.get_state()))
else:
    iterator.set_state(json.loads(open(state_file).read()))
np.save(out, np.stack([next(iterator)["input_ids"] for _ in range(12)]))
"""


def test_a_restored_iterator_in_a_fresh_process_continues_where_it_stopped(corpus, tmp_path):
    from readers.grain import grain_dataset

    version_dir, _ = corpus
    for mode in ("save", "restore"):
        run = subprocess.run([sys.executable, "-c", RESUME, version_dir, str(tmp_path / "state.json"), mode, str(tmp_path / f"{mode}.npy")], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
        assert run.returncode == 0, run.stderr[-3000:]
    iterator = iter(grain_dataset(version_dir, batch_size=4, seed=11, num_epochs=3, process_index=1, process_count=2))
    uninterrupted = [next(iterator)["input_ids"] for _ in range(19)][7:]  # crosses into the second epoch
    np.testing.assert_array_equal(np.load(tmp_path / "restore.npy"), np.stack(uninterrupted))
    np.testing.assert_array_equal(np.load(tmp_path / "save.npy"), np.stack(uninterrupted))


def test_a_corrupt_array_record_shard_fails_naming_the_file(corpus, tmp_path):
    from readers.grain import grain_dataset
    from readers.records import CorruptShard

    version_dir, _ = corpus
    copy = tmp_path / "version"
    shutil.copytree(version_dir, copy)
    shard = sorted((copy / "train").glob("*.array_record"))[1]
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShard, match=shard.name):
        for _ in grain_dataset(str(copy), batch_size=4, shuffle=False, process_index=0, process_count=1, num_threads=0):
            pass


def test_a_flax_decoder_learns_from_the_grain_reader(corpus, tmp_path):
    version_dir, _ = corpus
    state = tmp_path / "state.json"
    command = [sys.executable, os.path.join(REPO, "examples", "flax_clm.py"), "--data", version_dir, "--steps", "40", "--state", str(state)]
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO})
    assert run.returncode == 0, run.stderr[-3000:]
    losses = [float(line.split()[-1]) for line in run.stdout.splitlines() if line.startswith("step ")]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 1.0, losses
    assert json.loads(state.read_text())["next_index"] == 40


def test_the_readers_import_without_beam_tensorflow_or_jax():
    code = "import sys, readers.grain, readers.array_record, readers.tf_data; print(sorted(m for m in ('apache_beam', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_seeds_0_and_1_over_epochs_0_to_2_give_six_different_orders(corpus):
    from readers.grain import grain_dataset

    version_dir, _ = corpus
    orders = {
        (seed, epoch): batches(grain_dataset(version_dir, batch_size=4, seed=seed, epoch=epoch, process_index=0, process_count=1)).tobytes()
        for seed in (0, 1)
        for epoch in (0, 1, 2)
    }
    assert len(set(orders.values())) == 6


def test_dtype_casts_the_integer_features_and_keeps_the_shapes(corpus):
    from readers.grain import grain_dataset

    version_dir, _ = corpus
    batch = next(iter(grain_dataset(version_dir, batch_size=4, dtype=np.int64, process_index=0, process_count=1)))
    default = next(iter(grain_dataset(version_dir, batch_size=4, process_index=0, process_count=1)))
    assert batch["input_ids"].dtype == np.int64 and default["input_ids"].dtype == np.int32
    assert batch["input_ids"].shape == default["input_ids"].shape == (4, 64)
    np.testing.assert_array_equal(batch["input_ids"], default["input_ids"])
