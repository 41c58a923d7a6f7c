"""What a build costs and leaves on an object store, counted through a proxy in front of a GCS emulator on 127.0.0.1."""

from __future__ import annotations

import pytest

from corpus_tools import IN_MEMORY, run_cli
from gcs_tools import BUCKET, counting_proxy, download, emulator, objects, point_beam_at, upload


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    """The emulator's bucket URL, and the traffic Beam's GCS client sends it."""
    with emulator(tmp_path) as port, counting_proxy(port) as (proxy_port, traffic):
        point_beam_at(monkeypatch, f"http://127.0.0.1:{proxy_port}")
        yield f"gs://{BUCKET}", traffic


def _build(gcs_url, tokenizer_path, *args):
    code, printed = run_cli(
        "build", "--tokenizer", tokenizer_path, "--output", f"{gcs_url}/corpus", "--seq-len", 64, "--no-progress", *args, *IN_MEMORY,
    )
    assert code == 0, printed
    return download(f"{gcs_url}/corpus/LATEST").decode().strip()


def test_temporaries_are_deleted_in_batches_of_a_hundred(gcs):
    """A list of paths would cost a lookup and a one-object batch each: 600 requests here, not 3 batches and a listing.

    (Hundreds, not thousands, of files: the emulator rewrites its whole table on every delete.)
    """
    from google.cloud import storage

    from transforms.storage import delete_tree

    url, traffic = gcs
    bucket = storage.Client.create_anonymous_client().bucket(BUCKET)
    files = 300
    for i in range(files):
        bucket.blob(f"corpus/versions/v/.tmp/transit-{i:05d}").upload_from_string(b"x")
    bucket.blob("corpus/versions/v/train/shard").upload_from_string(b"kept")
    traffic.reset()
    delete_tree(f"{url}/corpus/versions/v/.tmp")
    assert objects(f"{url}/corpus/") == ["versions/v/train/shard"]
    assert traffic.requests["batch"] == files // 100
    assert sum(traffic.requests.values()) <= files // 100 + 5, traffic.requests


def test_a_failed_build_is_removed_by_verify_clean(gcs, tokenizer_path):
    url, _ = gcs
    failed = f"{url}/corpus/versions/failed"
    upload(f"{failed}/train/clm-00000-of-00002.tfrecord", b"half a shard")
    upload(f"{failed}/.tmp/transit-0123", b"tokenized documents")
    version = _build(url, tokenizer_path, "--num-shards", 2)
    assert not [f for f in objects(f"{url}/corpus/versions/{version}/") if ".tmp" in f]
    upload(f"{url}/corpus/versions/{version}/.tmp/0123abcd-LATEST", f"{version}\n".encode())  # a publish killed after its manifest
    assert any(f.startswith("versions/failed/") for f in objects(f"{url}/corpus/"))
    code, printed = run_cli("verify", f"{url}/corpus", "--clean")
    assert code == 0, printed
    assert printed.splitlines()[0] == "Removed 1 incomplete version(s): failed"
    assert {f.split("/")[0] for f in objects(f"{url}/corpus/versions/")} == {version}
    assert not [f for f in objects(f"{url}/corpus/") if ".tmp" in f]


def test_a_rerun_of_a_failed_version_replaces_its_leftover(gcs, tokenizer_path):
    """The failed run had another shard count: none of its shards may survive in the published version."""
    url, _ = gcs
    upload(f"{url}/corpus/versions/v1/train/clm-00003-of-00009.tfrecord", b"a shard of the failed run")
    assert _build(url, tokenizer_path, "--num-shards", 2, "--version", "v1") == "v1"
    names = objects(f"{url}/corpus/versions/v1/")
    assert not [n for n in names if "-of-00009" in n or ".tmp" in n], names
    code, printed = run_cli("verify", f"{url}/corpus")
    assert code == 0, printed


def test_version_names_are_not_reused_on_an_object_store(gcs):
    from pipelines.build import _unused_version_name

    url, _ = gcs
    upload(f"{url}/corpus/versions/20260101T000000Z-abcd/train/x", b"x")
    upload(f"{url}/corpus/versions/20260101T000000Z-abcd.2/train/x", b"x")
    assert _unused_version_name(f"{url}/corpus", "20260101T000000Z-abcd") == "20260101T000000Z-abcd.3"
    assert _unused_version_name(f"{url}/corpus", "20260101T000000Z-abc") == "20260101T000000Z-abc"


def test_an_unreachable_store_fails_planning_in_seconds_in_one_line(monkeypatch, capsys):
    """Beam's client alone retries a refused connection for 120 s, then dies with a google.api_core traceback."""
    import time

    from gcs_tools import free_port

    closed = free_port()
    point_beam_at(monkeypatch, f"http://127.0.0.1:{closed}")
    started = time.monotonic()
    code, _ = run_cli("build", "--output", f"gs://{BUCKET}/corpus", "--no-progress", *IN_MEMORY)
    error = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 10
    assert error == f"tokenmill: error: --output gs://{BUCKET}/corpus: cannot reach the object store at 127.0.0.1:{closed} (Connection refused); check the network\n"


def test_a_missing_bucket_fails_planning_in_one_line(gcs, capsys):
    url, _ = gcs
    code, _ = run_cli("build", "--output", "gs://no-such-bucket/corpus", "--no-progress", *IN_MEMORY)
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("tokenmill: error: --output gs://no-such-bucket/corpus: NotFound: ") and error.count("\n") == 1, error


def test_a_read_range_downloads_its_own_bytes(gcs, sample_docs):
    """Beam's reader fetches 16 MiB at each open: the four ranges of this 4.7 MB file downloaded 14.0 MB, now 4.9."""
    import json

    from transforms.read import InputSpec, Document, open_for, plan_ranges, read_range
    from transforms.storage import open_raw

    url, traffic = gcs
    data = "".join(json.dumps({**d, "id": f"{d['id']}-{copy}"}) + "\n" for copy in range(2) for d in sample_docs).encode()
    upload(f"{url}/raw/docs.jsonl", data)
    ranges = plan_ranges(f"{url}/raw/docs.jsonl", len(data), "jsonl", None, 1 << 20)
    assert len(ranges) >= 4
    traffic.reset()
    keys = [d.key for rng in ranges for d in read_range(rng, open_for(rng), InputSpec()) if isinstance(d, Document)]
    assert traffic.downloaded_by_object["raw/docs.jsonl"] <= 1.5 * len(data), (traffic.downloaded_by_object, len(data))
    whole = plan_ranges(f"{url}/raw/docs.jsonl", len(data), "jsonl", None, 1 << 30)[0]
    assert keys == [d.key for d in read_range(whole, open_raw, InputSpec()) if isinstance(d, Document)]


def _upload_sample(url, sample_docs, tokenizer_path):
    """The sample corpus and tokenizer on the store, where a build reads them."""
    import json

    with open(tokenizer_path, "rb") as f:
        upload(f"{url}/spm.model", f.read())
    upload(f"{url}/raw/docs.jsonl", "".join(json.dumps(d) + "\n" for d in sample_docs).encode())


def test_a_build_downloads_about_what_it_uploads(gcs, sample_docs, tokenizer_path):
    """Transit files are read back reference by reference, and every shard once by the verification: nothing more.

    64 buckets of 200 documents make references of a few KB; when each read
    fetched 16 MiB or the rest of its transit file, this build downloaded
    37.8 MB for 4.5 MB uploaded (8.4x); now 5.7 MB (1.3x).
    """
    url, traffic = gcs
    _upload_sample(url, sample_docs, tokenizer_path)
    traffic.reset()
    code, printed = run_cli(
        "build", "--input", f"{url}/raw/docs.jsonl", "--tokenizer", f"{url}/spm.model", "--output", f"{url}/corpus",
        "--seq-len", 64, "--num-shards", 4, "--num-buckets", 64, "--no-progress", *IN_MEMORY,
    )
    assert code == 0, printed
    written = sum(n for name, n in traffic.downloaded_by_object.items() if name.startswith("corpus/versions/"))
    assert written <= 1.5 * traffic.uploaded


def test_transit_reads_do_not_grow_with_the_bucket_count(gcs, sample_docs, tokenizer_path):
    """Each worker's hold sends one reference per shuffle key it holds: with a key per bucket, 65,536 buckets cut the
    4,122 documents into about one reference (and one transit read) each. Past 256 buckets, consecutive buckets share a
    key, so the references stay as few and as large as at 256 buckets: 530 transit reads against 526. (With a key per
    bucket: 7,990 against 526.)
    """
    url, traffic = gcs
    _upload_sample(url, sample_docs, tokenizer_path)
    reads = {}
    for buckets in (256, 65_536):
        traffic.reset()
        code, printed = run_cli(
            "build", "--input", f"{url}/raw/docs.jsonl", "--tokenizer", f"{url}/spm.model", "--output", f"{url}/corpus-{buckets}",
            "--seq-len", 64, "--num-shards", 2, "--num-buckets", buckets, "--no-progress", *IN_MEMORY,
        )
        assert code == 0, printed
        reads[buckets] = sum(n for name, n in traffic.reads_by_object.items() if "/.tmp/transit-" in name)
    assert reads[65_536] <= 1.1 * reads[256], reads
