"""Helpers the tests share: run the CLI in-process and read shards back like a trainer."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Callable

import numpy as np

IN_MEMORY = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
TWO_PROCESSES = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def run_cli(*args: str) -> tuple[int, str]:
    """`tokenmill ARGS` in this process; returns the exit code (also of argparse's exits) and what it printed.

    A build or rebuild of an `--input` without `--tokenizer` (an error for users) gets the sample
    tokenizer: the tests' corpora are made of sample documents.
    """
    from pipelines.cli import main
    from pipelines.sample import sample_tokenizer_path

    args = [str(a) for a in args]
    if args[:1] in (["build"], ["rebuild"]) and any(a.split("=")[0] == "--input" for a in args) and not any(a.split("=")[0] == "--tokenizer" for a in args):
        args += ["--tokenizer", sample_tokenizer_path()]
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            code = main(args)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue()


def ask_workers(directory, probe: Callable[[], str]) -> set[str]:
    """What `probe()` returns in the worker processes of a local run with `runners.local.run`'s defaults (two workers)."""
    import apache_beam as beam

    from runners.local import run

    def record(element, directory=str(directory)):  # a local function: pickled by value for the workers
        with open(os.path.join(directory, f"{os.getpid()}-{element}"), "w") as f:
            f.write(probe())

    run(lambda p, _: p | beam.Create(range(4)) | beam.Map(record), ["--direct_num_workers=2"], show_progress=False)
    names = os.listdir(directory)
    assert {name.split("-")[0] for name in names} - {str(os.getpid())}, "ran in worker processes"
    return {open(os.path.join(directory, name)).read() for name in names}


def build(output, *args: str, runner=IN_MEMORY) -> tuple[dict, str]:
    """Run `tokenmill build` and return (manifest, version directory)."""
    code, printed = run_cli("build", "--output", output, "--no-progress", *args, *runner)
    assert code == 0, printed
    with open(os.path.join(output, "LATEST")) as f:
        version_dir = os.path.join(output, "versions", f.read().strip())
    with open(os.path.join(version_dir, "manifest.json")) as f:
        return json.load(f), version_dir


def temporaries(root) -> list[str]:
    """Every temporary file or directory under `root` (a name starting `.tmp`: a version's `.tmp/` prefix and what it holds), relative to it."""
    found = (os.path.relpath(os.path.join(d, name), root) for d, dirs, files in os.walk(root) for name in dirs + files if name.startswith(".tmp"))
    return sorted(found)


def shard_files(version_dir: str, split: str, fmt: str) -> list[str]:
    suffix = "*.parquet" if fmt == "parquet" else "*.tfrecord*"
    return sorted(glob.glob(os.path.join(version_dir, split, suffix)))


def assert_identical_shards(one_dir: str, two_dir: str) -> int:
    """Every shard of one version equals, byte for byte, the shard of the same name in the other; returns how many."""
    compared = 0
    for split in ("train", "validation"):
        for fmt in ("tfrecord", "parquet"):
            for path in shard_files(one_dir, split, fmt):
                with open(path, "rb") as a, open(os.path.join(two_dir, split, os.path.basename(path)), "rb") as b:
                    assert a.read() == b.read(), path
                compared += 1
    assert sorted(map(os.path.basename, glob.glob(os.path.join(two_dir, "*", "*")))) == sorted(
        map(os.path.basename, glob.glob(os.path.join(one_dir, "*", "*")))
    )
    return compared


def read_tf(version_dir: str, manifest: dict, split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a split through tf.data with the schema's parse spec, in shard order."""
    import tensorflow as tf

    from schemas import Schema

    spec = Schema.from_manifest(manifest["objective"]["name"], manifest["features"]).tf_parse_spec()
    compression = "GZIP" if manifest["config"]["compression"] == "gzip" else ""
    ds = tf.data.TFRecordDataset(shard_files(version_dir, split, "tfrecord"), compression_type=compression)
    batches = list(ds.batch(4096).map(lambda records: tf.io.parse_example(records, spec)))
    return {
        name: np.concatenate([b[name].numpy() for b in batches]) if batches else np.zeros((0, spec[name].shape[0]))
        for name in spec
    }


def read_parquet(version_dir: str, split: str = "train") -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in shard_files(version_dir, split, "parquet")]
    out = {}
    for name in tables[0].column_names:
        out[name] = np.concatenate([np.stack(t.column(name).to_numpy(zero_copy_only=False)) for t in tables if t.num_rows])
    return out


def read_with_torch_reader(version_dir: str, split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a split through `readers.torch` (its own TFRecord decoder), in shard order."""
    from readers.torch import TokenmillDataset

    rows = list(TokenmillDataset(version_dir, split))
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def read_with_tfrecord_package(version_dir: str, manifest: dict, split: str = "train") -> dict[str, np.ndarray]:
    """Every example of a split through the `tfrecord` package, in shard order, in a subprocess.

    The package registers its own copy of TensorFlow's protobuf messages, so
    it cannot share a process with TensorFlow (which the tests import).
    """
    description = {f["name"]: "int" if f["tfrecord"]["dtype"] == "int64" else "float" for f in manifest["features"]}
    compression = "gzip" if manifest["config"]["compression"] == "gzip" else None
    code = (
        "import io, sys, numpy as np\n"
        "from tfrecord.reader import tfrecord_loader\n"
        f"rows = [r for path in {shard_files(version_dir, split, 'tfrecord')!r} for r in tfrecord_loader(path, None, {description!r}, compression_type={compression!r})]\n"
        "out = {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}\n"
        "buf = io.BytesIO(); np.savez(buf, **out); sys.stdout.buffer.write(buf.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    with np.load(io.BytesIO(result.stdout)) as data:
        return {k: data[k] for k in data.files}


def sample_subset(directory, docs: list[dict], count: int = 400) -> str:
    """The first `count` sample documents as a JSON-lines file in `directory`, for small, quick corpora."""
    path = os.path.join(directory, "docs.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs[:count])
    return path
