"""How fast one process reads tokenmill shards for PyTorch, beside how fast it reads their bytes.

    python -m bench.readers --mb 20

Builds a `clm` corpus of rows of 1024 tokens from `--mb` MB of the sample
articles (no download), then, in this one process (no DataLoader workers),
times:

- raw read: the TFRecord shards' bytes read into memory (MB/s);
- frames: `readers.records.iter_records`, every frame's two CRCs checked;
- `TokenmillDataset` sequential and with shuffling (the default window),
  TFRecord and Parquet: examples/s and tokens/s (tokens = the `input_ids`
  values, 1024 a row), each example converted to the int64 arrays a trainer
  gets;
- `TokenmillMapDataset` (Parquet): in split order and in a random order.

Each figure is the best of `--repeat` passes (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SEQ_LEN = 1024


def best_rate(work, repeat: int) -> tuple[int, float]:
    """(items, items/s) of `work()` (which returns how many items it handled), the fastest of `repeat` runs."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        items = work()
        best = max(best, items / (time.perf_counter() - start))
    return items, best


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="input text to build the corpus from (MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="build into this directory and keep it (default: a temporary one)")
    args = parser.parse_args(argv)

    from bench.corpus import write_corpus
    from readers.manifest import Corpus
    from readers.records import iter_records
    from readers.torch import DEFAULT_WINDOW, TokenmillDataset, TokenmillMapDataset

    work_dir = args.keep or tempfile.mkdtemp(prefix="bench-readers-")
    out = os.path.join(work_dir, "out")
    if not os.path.exists(os.path.join(out, "LATEST")):
        write_corpus(os.path.join(work_dir, "input"), args.mb)
        subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "build", "--input", os.path.join(work_dir, "input", "*"), "--output", out]
            + ["--seq-len", str(SEQ_LEN), "--num-shards", "4", "--no-progress"],
            check=True,
        )
    corpus = Corpus(out)
    files = corpus.files("train")
    figures: dict[str, float] = {}

    def raw_read() -> int:
        size = 0
        for path in files:
            with open(path, "rb") as f:
                size += len(f.read())
        return size

    size, rate = best_rate(raw_read, args.repeat)
    figures["raw read MB/s"] = rate / 1e6
    _, rate = best_rate(lambda: sum(1 for path in files for _ in iter_records(path)), args.repeat)
    figures["frames (CRCs checked) MB/s"] = rate * size / corpus.num_examples("train") / 1e6

    def iterate(dataset) -> int:
        return sum(1 for _ in dataset)

    for fmt in ("tfrecord", "parquet"):
        for shuffle in (False, True):
            _, rate = best_rate(lambda: iterate(TokenmillDataset(out, shuffle=shuffle, fmt=fmt)), args.repeat)
            name = f"TokenmillDataset {fmt} {'shuffled (window ' + str(DEFAULT_WINDOW) + ')' if shuffle else 'sequential'}"
            figures[f"{name} examples/s"] = rate
            figures[f"{name} tokens/s"] = rate * SEQ_LEN
    mapped = TokenmillMapDataset(out)
    for order_name, order in (("in order", np.arange(len(mapped))), ("random order", np.random.default_rng(0).permutation(len(mapped)))):
        _, rate = best_rate(lambda: sum(1 for i in order.tolist() if mapped[i] is not None), args.repeat)
        figures[f"TokenmillMapDataset {order_name} examples/s"] = rate
    print(f"clm rows of {SEQ_LEN}, {corpus.num_examples('train')} examples, {size / 1e6:.1f} MB of TFRecord, one process:")
    for name, value in figures.items():
        print(f"  {name:60s} {value:14,.0f}")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
