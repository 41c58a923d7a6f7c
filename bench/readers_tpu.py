"""Trainer-side read speed for TPU/JAX trainers, and what the ArrayRecord output adds to a build.

    python -m bench.readers_tpu --mb 20 --seq-len 1024

Builds a `clm` corpus of `--mb` MB (rows of `--seq-len`) twice, with
`--formats tfrecord,parquet` and with `tfrecord,parquet,array_record`
(the fastest of `--repeat` builds each; the difference is ArrayRecord's
added time, within the noise of a shared machine), times writing the train
split's records as TFRecord and as ArrayRecord files alone (in this
process, no build around it), then reads the train split in one process:

- Grain (`readers.grain.grain_dataset`) with the global index shuffle, from
  the ArrayRecord shards and from the Parquet shards;
- tf.data (`readers.tf_data.tf_dataset`) with the per-epoch shard reshuffle
  and a shuffle buffer of 1024, parsed in batches.

A reader's figure is tokens (batch x seq-len) per second over
`--read-seconds` seconds of batches of 32, after a warm-up of 20 batches.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import tempfile
import time

from bench.corpus import write_corpus
from bench.throughput import Runner, run_build
from readers.manifest import Corpus

BATCH = 32
WARM_UP = 20


def tokens_per_second(batches, seconds: float) -> float:
    """Tokens a second the iterator `batches` yields (the `input_ids` of each batch), after a warm-up."""
    for _ in range(WARM_UP):
        next(batches)
    tokens, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tokens += next(batches)["input_ids"].size
    return tokens / (time.perf_counter() - start)


def read_rates(version_dir: str, seconds: float) -> dict[str, float]:
    from readers.grain import grain_dataset
    from readers.tf_data import tf_dataset

    rates = {}
    for fmt in ("array_record", "parquet"):
        ds = grain_dataset(version_dir, batch_size=BATCH, seed=1, num_epochs=None, fmt=fmt, process_index=0, process_count=1)
        rates[f"grain {fmt}, global shuffle"] = tokens_per_second(iter(ds), seconds)
    ds = tf_dataset(version_dir, shuffle=True, seed=1, num_epochs=1000, shuffle_buffer=1024, batch_size=BATCH)
    rates["tf.data tfrecord, shard reshuffle + buffer 1024"] = tokens_per_second(iter(ds.as_numpy_iterator()), seconds)
    return rates


def write_seconds(version_dir: str, workdir: str) -> dict[str, float]:
    """Seconds to write the train split's records as TFRecord and as ArrayRecord files, in this process (no build around it)."""
    from readers.records import iter_records
    from transforms.codec import frame_tfrecords
    from transforms.storage import temporary_dir, write_atomically
    from transforms.write import write_array_record

    shards = sorted(glob.glob(os.path.join(version_dir, "train", "*.tfrecord")))
    records = [list(iter_records(path)) for path in shards]
    seconds = {"tfrecord": 0.0, "array_record": 0.0}
    temporary = temporary_dir(workdir)
    for i, shard in enumerate(records):
        start = time.perf_counter()
        write_atomically(os.path.join(workdir, f"shard-{i}.tfrecord"), temporary, [frame_tfrecords(shard)])
        seconds["tfrecord"] += time.perf_counter() - start
        start = time.perf_counter()
        write_array_record(os.path.join(workdir, f"shard-{i}.array_record"), temporary, [shard])
        seconds["array_record"] += time.perf_counter() - start
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20, help="corpus size in MB of JSONL. Default: 20.")
    parser.add_argument("--seq-len", type=int, default=1024, help="clm row length. Default: 1024.")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="build worker processes. Default: all cores.")
    parser.add_argument("--repeat", type=int, default=2, help="builds per format set; the fastest counts. Default: 2.")
    parser.add_argument("--read-seconds", type=float, default=10, help="how long each reader is timed. Default: 10.")
    parser.add_argument("--json", default="bench-readers-tpu.json", help="where to write the results.")
    parser.add_argument("--workdir", help="scratch directory. Default: a temporary directory.")
    args = parser.parse_args(argv)

    from pipelines.sample import sample_tokenizer_path

    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-readers-tpu-")
    corpus = os.path.join(workdir, "corpus")
    write_corpus(corpus, args.mb)
    extra = ["--seq-len", str(args.seq_len), "--num-shards", "8"]
    builds = {}
    for formats in ("tfrecord,parquet", "tfrecord,parquet,array_record"):
        runs = [
            run_build("clm", corpus, sample_tokenizer_path(), os.path.join(workdir, f"out-{formats}-{i}"), Runner("local", args.workers), [*extra, "--formats", formats])
            for i in range(args.repeat)
        ]
        builds[formats] = min(r["seconds"] for r in runs)
    last = os.path.join(workdir, f"out-tfrecord,parquet,array_record-{args.repeat - 1}")
    built = Corpus(last)
    version_dir, manifest = built.root, built.manifest
    train = manifest["totals"]["train"]
    sizes = {fmt: sum(s["bytes"] for s in manifest["shards"] if s["format"] == fmt and s["split"] == "train") for fmt in train["shards"]}
    results = {
        "mb": args.mb,
        "seq_len": args.seq_len,
        "train_examples": train["examples"],
        "train_bytes_by_format": sizes,
        "build_seconds": builds,
        "array_record_added_seconds": builds["tfrecord,parquet,array_record"] - builds["tfrecord,parquet"],
        "write_seconds": write_seconds(version_dir, workdir),
        "read_tokens_per_second": read_rates(version_dir, args.read_seconds),
    }
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"build s: {builds}; ArrayRecord adds {results['array_record_added_seconds']:.1f} s; train bytes {sizes}")
    print(f"writing the train records alone, s: {results['write_seconds']}")
    for name, rate in results["read_tokens_per_second"].items():
        print(f"{name}: {rate / 1e6:.2f} M tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
