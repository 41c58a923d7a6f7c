"""The PyTorch readers stream a version from gs:// (the GCS emulator) and work beside TensorFlow in one process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from corpus_tools import build, sample_subset
from test_gcs import BUCKET, gcs  # noqa: F401 — the emulator fixture


@pytest.fixture(scope="module")
def local_version(tmp_path_factory, sample_docs):
    directory = tmp_path_factory.mktemp("clm")
    out = directory / "out"
    build(out, "--input", sample_subset(directory, sample_docs), "--seq-len", 64, "--num-shards", 2, "--compression", "gzip")
    return out


def _rows(dataset) -> np.ndarray:
    return np.stack([np.concatenate([e[name] for name in sorted(e)]) for e in dataset])


def compare_remote(url: str, local: str) -> None:
    """The readers over gs:// give what they give over the local copy (run in a process that talks to the emulator)."""
    from readers.torch import TokenmillDataset, TokenmillMapDataset

    for options in ({}, {"rank": 1, "world_size": 2, "shuffle": True, "window": 64}):
        np.testing.assert_array_equal(_rows(TokenmillDataset(url, **options)), _rows(TokenmillDataset(local, **options)))
    remote_map, local_map = TokenmillMapDataset(url), TokenmillMapDataset(local)
    for index in (0, len(local_map) - 1, 123):
        np.testing.assert_array_equal(remote_map[index]["input_ids"], local_map[index]["input_ids"])


GCSFS_ENV = {
    "FSSPEC_GCS_TOKEN": "anon",  # fsspec's per-protocol option from the environment: no credential lookup
    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # gcsfs's bucket-type probe is gRPC, which the emulator does not serve
}


def test_a_version_on_gcs_streams_like_the_local_copy(gcs, local_version):  # noqa: F811
    env = {**os.environ, **GCSFS_ENV, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    upload = f"import fsspec; fsspec.filesystem('gs').put({str(local_version)!r}, {BUCKET + '/'!r}, recursive=True)"
    url = f"{gcs}/{local_version.name}"
    for code in (upload, f"import test_torch_remote as t; t.compare_remote({url!r}, {str(local_version)!r})"):
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]


def test_the_torch_reader_works_after_tensorflow_is_imported(local_version):
    code = (
        "import tensorflow as tf\n"
        "from readers.tf_data import tf_dataset\n"
        "from readers.torch import TokenmillDataset\n"
        "import numpy as np, torch\n"
        f"expected = np.stack([e['input_ids'].numpy() for e in tf_dataset({str(local_version)!r})])\n"
        f"loader = torch.utils.data.DataLoader(TokenmillDataset({str(local_version)!r}), batch_size=64)\n"
        "got = torch.cat([b['input_ids'] for b in loader]).numpy()\n"
        "assert sorted(map(bytes, got)) == sorted(map(bytes, expected)), 'the same examples'\n"
        "print(len(got))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 0
