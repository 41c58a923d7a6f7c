"""Trainer-side readers driven by the manifest: tf.data, PyTorch (its own TFRecord decoder), Hugging Face datasets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build, read_parquet


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_corpus_path):
    out = tmp_path_factory.mktemp("readers")
    manifest, version_dir = build(out, "--input", sample_corpus_path, "--seq-len", 128, "--num-shards", 3, "--compression", "gzip")
    return out, manifest, version_dir


def test_tf_data_reader_follows_latest_and_has_static_shapes(corpus):
    import tensorflow as tf

    from readers.tf_data import tf_dataset

    out, manifest, version_dir = corpus
    ds = tf_dataset(str(out), "train")
    assert ds.element_spec["input_ids"] == tf.TensorSpec([128], tf.int64)
    rows = np.stack([e["input_ids"].numpy() for e in ds])
    assert rows.shape[0] == manifest["totals"]["train"]["examples"]
    expected = read_parquet(version_dir)["input_ids"]
    assert sorted(map(bytes, rows.astype(np.int32))) == sorted(map(bytes, expected))


def test_torch_dataloader_with_workers_reads_every_example_once(corpus):
    out, manifest, _ = corpus
    code = (
        "import torch\n"
        "from readers.torch import TokenmillDataset\n"
        f"ds = TokenmillDataset({str(out)!r}, 'train')\n"
        "loader = torch.utils.data.DataLoader(ds, batch_size=16, num_workers=2)\n"
        "batches = list(loader)\n"
        "ids = torch.cat([b['input_ids'] for b in batches])\n"
        "assert ids.dtype == torch.long and ids.shape[1] == 128, ids.shape\n"
        "print(ids.shape[0], len(set(map(bytes, ids.numpy()))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    count, distinct = map(int, result.stdout.split())
    assert count == manifest["totals"]["train"]["examples"]
    assert distinct == len(set(map(bytes, read_parquet(corpus[2])["input_ids"])))


def test_hugging_face_datasets_reads_the_parquet_shards(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from readers.hf import hf_dataset

    out, manifest, _ = corpus
    ds = hf_dataset(str(out), "train")
    assert ds.num_rows == manifest["totals"]["train"]["examples"]
    assert ds.features["input_ids"].length == 128
    assert len(ds[0]["segment_ids"]) == 128
