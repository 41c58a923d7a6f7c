"""Rebuild from gs:// to gs:// through Beam's own GCS client, against a local GCS emulator on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from corpus_tools import IN_MEMORY, run_cli
from gcs_tools import BUCKET, download, emulator, objects, point_beam_at, upload


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    """A GCS emulator with one bucket, Beam's GCS client pointed at it; yields the bucket's URL."""
    with emulator(tmp_path) as port:
        point_beam_at(monkeypatch, f"http://127.0.0.1:{port}")
        yield f"gs://{BUCKET}"


def jsonl(docs) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in docs).encode()


def test_rebuild_from_gcs_to_gcs(gcs, sample_docs, tokenizer_path):
    with open(tokenizer_path, "rb") as f:
        upload(f"{gcs}/spm.model", f.read())
    for i in range(2):
        upload(f"{gcs}/raw/part-{i}.jsonl", jsonl(sample_docs[i * 100 : (i + 1) * 100]))
    out = f"{gcs}/corpus"

    def rebuild():
        code, printed = run_cli(
            "rebuild", "--input", f"{gcs}/raw/*.jsonl", "--tokenizer", f"{gcs}/spm.model", "--output", out,
            "--seq-len", 64, "--num-shards", 2, "--keep", 1, "--no-progress", *IN_MEMORY,
        )
        assert code == 0, printed
        return printed

    rebuild()
    first = download(f"{out}/LATEST").decode().strip()
    manifest = json.loads(download(f"{out}/versions/{first}/manifest.json"))
    assert manifest["inputs"]["files"][0]["path"] == f"{gcs}/raw/part-0.jsonl" and manifest["inputs"]["files"][0]["checksum"]
    assert manifest["counters"]["records_read"] == 200
    assert "Up to date" in rebuild()

    upload(f"{gcs}/raw/part-1.jsonl", jsonl(sample_docs[300:400]))
    assert "Rebuilding: the inputs" in rebuild()
    second = download(f"{out}/LATEST").decode().strip()
    assert second != first
    files = objects(f"{out}/")
    assert {f.split("/")[1] for f in files if f.startswith("versions/")} == {second}
    assert not [f for f in files if ".tmp" in f]
    code, report = run_cli("verify", out)
    assert code == 0 and report.startswith(f"OK: {out}/versions/{second}: 7 files"), report
