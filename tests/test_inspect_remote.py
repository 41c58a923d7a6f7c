"""`tokenmill show` and `tokenmill report` read a published version on gs:// (the GCS emulator) as they read the local copy."""

from __future__ import annotations

import os
import subprocess
import sys

from corpus_tools import build, sample_subset
from test_gcs import BUCKET, gcs  # noqa: F401 — the emulator fixture
from test_torch_remote import GCSFS_ENV


def test_show_and_report_on_gcs_print_what_they_print_locally(gcs, tmp_path, sample_docs):  # noqa: F811
    out = tmp_path / "out"
    build(out, "--input", sample_subset(tmp_path, sample_docs, 200), "--objective", "mlm_nsp", "--seq-len", 64, "--num-shards", 2)
    env = {**os.environ, **GCSFS_ENV}

    def tokenmill(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    upload = f"import fsspec; fsspec.filesystem('gs').put({str(out)!r}, {BUCKET + '/'!r}, recursive=True)"
    result = subprocess.run([sys.executable, "-c", upload], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = f"{gcs}/{out.name}"
    shown = tokenmill("show", remote, "-n", "3", "--json")
    assert shown and shown == tokenmill("show", str(out), "-n", "3", "--json")
    reported, local = tokenmill("report", remote), tokenmill("report", str(out))
    assert reported.splitlines()[0].endswith(remote + "/versions/" + local.splitlines()[0].rsplit("/", 1)[1])
    assert reported.splitlines()[1:] == local.splitlines()[1:] and "examples" in reported
