"""A build's memory does not grow with the corpus: the whole corpus in one shard, at 1x and 4x, measured per process."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.corpus import write_corpus
from bench.memory import PeakMemory

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB_1X = 12  # past the size at which a worker's holds (32 MiB of tokens, of examples) fill up


def largest_process_peak(corpus: str, output: str, tokenizer: str) -> int:
    """The highest peak resident memory of any one process of a one-worker, one-shard clm build."""
    cmd = [
        sys.executable, "-m", "pipelines.cli", "build", "--input", f"{corpus}/*.jsonl", "--tokenizer", tokenizer,
        "--output", output, "--num-shards", "1", "--no-progress", "--direct_num_workers=1", "--direct_running_mode=multi_processing",
    ]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(process.pid)
    memory.start()
    printed, _ = process.communicate()
    memory.stop()
    assert process.returncode == 0, printed
    return memory.largest_process_peak


def test_one_shard_of_four_times_the_corpus_takes_at_most_15_percent_more_memory_in_any_process(tmp_path, tokenizer_path, sample_corpus_path):
    peaks = {}
    for scale in (1, 4):
        corpus = str(tmp_path / f"corpus-{scale}x")
        write_corpus(corpus, MB_1X * scale, files=scale)
        peaks[scale] = largest_process_peak(corpus, str(tmp_path / f"out-{scale}x"), tokenizer_path)
    assert peaks[4] <= 1.15 * peaks[1], f"largest process: {peaks[1] / 1e6:.0f} MB at 1x, {peaks[4] / 1e6:.0f} MB at 4x"
