"""readers.tf_data: each host reads its own part of a split, the iterator resumes from a checkpoint, broken shards are named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _build(tmp_path_factory, sample_docs, tokenizer_path, name, shards):
    root = tmp_path_factory.mktemp(name)
    (root / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in sample_docs[:300]))
    manifest, version_dir = build(root / "out", "--input", root / "docs.jsonl", "--tokenizer", tokenizer_path, "--seq-len", 64, "--num-shards", shards, "--validation-fraction", 0.1)
    return version_dir, manifest["totals"]["train"]["examples"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_docs, tokenizer_path):
    return _build(tmp_path_factory, sample_docs, tokenizer_path, "tf-data", 3)


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, sample_docs, tokenizer_path):
    return _build(tmp_path_factory, sample_docs, tokenizer_path, "tf-data-1", 1)


def rows(ds) -> list[bytes]:
    return [bytes(e["input_ids"].numpy().astype(np.int32)) for e in ds]


@pytest.mark.parametrize("fixture", ["corpus", "one_shard"])
def test_four_hosts_read_equal_disjoint_parts_that_cover_the_split(request, fixture):
    import tensorflow as tf

    from readers.tf_data import tf_dataset

    version_dir, total = request.getfixturevalue(fixture)
    everything = rows(tf_dataset(version_dir))
    assert len(everything) == len(set(everything)) == total  # clm rows are distinct, so rows identify examples
    hosts = [rows(tf_dataset(version_dir, input_context=tf.distribute.InputContext(4, i, 1))) for i in range(4)]
    assert {len(h) for h in hosts} == {total // 4}
    assert sum(hosts, []) == everything[: 4 * (total // 4)]
    shuffled = [rows(tf_dataset(version_dir, num_hosts=4, host_index=i, shuffle=True, seed=5, epoch=2)) for i in range(4)]
    assert {len(h) for h in shuffled} == {total // 4}
    union = sum(shuffled, [])
    assert len(set(union)) == len(union) and set(union) <= set(everything)


def test_epochs_reshuffle_the_shard_order_by_seed_and_epoch(corpus):
    from readers.tf_data import tf_dataset

    version_dir, total = corpus
    two = rows(tf_dataset(version_dir, shuffle=True, seed=1, num_epochs=2))
    assert len(two) == 2 * total
    assert sorted(two[:total]) == sorted(two[total:]) and two[:total] != two[total:]
    assert two[total:] == rows(tf_dataset(version_dir, shuffle=True, seed=1, epoch=1))
    assert two[:total] != rows(tf_dataset(version_dir, shuffle=True, seed=2))


def test_batches_have_fully_defined_shapes_and_work_with_a_distribution_strategy(corpus):
    import tensorflow as tf

    from readers.tf_data import tf_dataset

    version_dir, total = corpus
    ds = tf_dataset(version_dir, batch_size=8, shuffle=True, shuffle_buffer=64)
    assert ds.element_spec["input_ids"] == tf.TensorSpec([8, 64], tf.int64)
    assert sum(1 for _ in ds) == total // 8
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    per_replica = strategy.distribute_datasets_from_function(
        lambda ctx: tf_dataset(version_dir, input_context=ctx, batch_size=ctx.get_per_replica_batch_size(8))
    )
    first = next(iter(per_replica))
    assert first["input_ids"].shape == (8, 64)


RESUME = """
import sys
import numpy as np
import tensorflow as tf
from readers.tf_data import tf_dataset
path, checkpoint, mode, out = sys.argv[1:]
ds = tf_dataset(path, num_hosts=2, host_index=1, shuffle=True, seed=3, num_epochs=3, shuffle_buffer=32, batch_size=8)
iterator = iter(ds)
state = tf.train.Checkpoint(iterator=iterator)
if mode == "save":
    for _ in range(5):
        next(iterator)
    state.write(checkpoint)
else:
    state.read(checkpoint).assert_consumed()
np.save(out, np.stack([next(iterator)["input_ids"].numpy() for _ in range(6)]))
"""


def test_a_restored_iterator_in_a_fresh_process_continues_where_it_stopped(corpus, tmp_path):
    from readers.tf_data import tf_dataset

    version_dir, _ = corpus
    for mode in ("save", "restore"):
        run = subprocess.run([sys.executable, "-c", RESUME, version_dir, str(tmp_path / "ckpt"), mode, str(tmp_path / f"{mode}.npy")], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
        assert run.returncode == 0, run.stderr[-3000:]
    uninterrupted = tf_dataset(version_dir, num_hosts=2, host_index=1, shuffle=True, seed=3, num_epochs=3, shuffle_buffer=32, batch_size=8)
    expected = np.stack([b["input_ids"].numpy() for b in uninterrupted.skip(5).take(6)])
    np.testing.assert_array_equal(np.load(tmp_path / "restore.npy"), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "save.npy"), expected)


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_a_corrupt_shard_fails_naming_the_file(corpus, tmp_path, damage):
    import tensorflow as tf

    from readers.tf_data import tf_dataset

    version_dir, _ = corpus
    copy = tmp_path / "version"
    shutil.copytree(version_dir, copy)
    shard = sorted((copy / "train").glob("*.tfrecord"))[1]
    data = bytearray(shard.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-100:]
    shard.write_bytes(bytes(data))
    with pytest.raises(tf.errors.InvalidArgumentError, match=shard.name):
        for _ in tf_dataset(str(copy), batch_size=4):
            pass


def test_a_keras_decoder_learns_from_tf_dataset_with_model_fit(corpus):
    version_dir, _ = corpus
    run = subprocess.run([sys.executable, os.path.join(REPO, "examples", "keras_clm.py"), "--data", version_dir, "--epochs", "4", "--steps-per-epoch", "10"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    losses = [float(line.split()[-1]) for line in run.stdout.splitlines() if line.startswith("epoch ")]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 1.0, losses


def test_seeds_0_and_1_over_epochs_0_to_2_give_six_different_orders(corpus):
    from readers.tf_data import tf_dataset

    version_dir, _ = corpus
    orders = {(seed, epoch): tuple(rows(tf_dataset(version_dir, shuffle=True, seed=seed, epoch=epoch, shuffle_buffer=32))) for seed in (0, 1) for epoch in (0, 1, 2)}
    assert len(set(orders.values())) == 6
