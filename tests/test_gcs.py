"""Rebuild from gs:// to gs:// through Beam's own GCS client, against a local GCS emulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from corpus_tools import IN_MEMORY, run_cli

BUCKET = "tokenmill-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    """`gcp-storage-emulator` in memory with one bucket; Beam's GCS client pointed at it, anonymously.

    Without credentials Beam retries Google's credential lookup for about 30 s
    and then connects anonymously; the fixture starts it in that final state.
    """
    port = _free_port()
    emulator = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    log = open(tmp_path / "emulator.log", "wb")
    process = subprocess.Popen([emulator, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "emulator.log").read_text()
                time.sleep(0.05)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        from apache_beam.internal.gcp import auth

        monkeypatch.setattr(auth._Credentials, "_credentials_init", True)  # noqa: SLF001
        monkeypatch.setattr(auth._Credentials, "_credentials", None)  # noqa: SLF001
        yield f"gs://{BUCKET}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def upload(path: str, data: bytes) -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)


def download(path: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def objects(prefix: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path[len(prefix) :] for m in FileSystems.match([prefix + "**"])[0].metadata_list)


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
    assert not [f for f in files if ".tmp-" in f]
    code, report = run_cli("verify", out)
    assert code == 0 and report.startswith(f"OK: {out}/versions/{second}: 6 files")
