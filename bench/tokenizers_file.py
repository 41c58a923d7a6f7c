"""A Hugging Face byte-level BPE `tokenizer.json` through tokenmill, beside raw `encode_batch` and datatrove, in one run.

    python -m bench.tokenizers_file --mb 5 --workers 2 --datatrove-path DIR

Made here, no download: the corpus (`bench.corpus`, 1× and 4×) and a
byte-level BPE of `--vocab-size` trained on the 1× texts. Then, on the same
cores:

- raw: `Tokenizer.encode_batch` over the 1× texts with `--workers` Rust
  threads (in a fresh process: the thread pool is fixed at its first use),
  the best of `--repeat`;
- tokenmill `clm` and `span_corruption` with that file (`bench.throughput`'s
  steady state from the 1× and 4× builds, `--workers` processes of one Rust
  thread each);
- datatrove's `DocumentTokenizer` (JSONL reader, tokenizer, `.ds` token
  files) on a `LocalPipelineExecutor` with one task per input file,
  `--workers` at a time, its steady state from 1× and 4× alike. datatrove
  is not a dependency: `--datatrove-path` names a directory it was
  installed to (`pip install --target DIR datatrove`), or it is skipped.

The ratio is steady tokens/s ÷ raw tokens/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.throughput import Runner, measure

OBJECTIVES = ("clm", "span_corruption")

_RAW = """
import json, os, sys, time
from tokenizers import Tokenizer
corpus_dir, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = [json.loads(line)["text"] for name in sorted(os.listdir(corpus_dir)) for line in open(os.path.join(corpus_dir, name), encoding="utf-8")]
tk = Tokenizer.from_file(path)
tk.encode_batch(texts[:2000], add_special_tokens=False)
best = None
for _ in range(repeat):
    start = time.perf_counter()
    tokens = sum(len(e.ids) for e in tk.encode_batch(texts, add_special_tokens=False))
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
print(json.dumps({"tokens": tokens, "tokens_per_s": tokens / best}))
"""

_DATATROVE = """
import sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.tokens import DocumentTokenizer
corpus_dir, path, out, workers, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
start = time.perf_counter()
LocalPipelineExecutor(
    pipeline=[JsonlReader(corpus_dir, glob_pattern="*.jsonl"), DocumentTokenizer(output_folder=out + "/tokens", tokenizer_name_or_path=path, eos_token="<|end_of_text|>", shuffle_documents=False)],
    tasks=tasks, workers=workers, logging_dir=out + "/logs", skip_completed=False,
).run()
print(time.perf_counter() - start)
"""


def train_tokenizer(corpus_dir: str, vocab_size: int, directory: str) -> str:
    """A byte-level BPE (GPT-2 / Llama 3 style) trained on the corpus, with its eos named in tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [json.loads(line)["text"] for name in sorted(os.listdir(corpus_dir)) for line in open(os.path.join(corpus_dir, name), encoding="utf-8")]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|end_of_text|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    os.makedirs(directory, exist_ok=True)
    tk.save(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|end_of_text|>"}, f)
    return directory


def raw_rate(corpus_dir: str, tokenizer_dir: str, threads: int, repeat: int) -> dict:
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads)}
    printed = subprocess.run([sys.executable, "-c", _RAW, corpus_dir, os.path.join(tokenizer_dir, "tokenizer.json"), str(repeat)], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(printed)


def datatrove_seconds(datatrove_path: str, corpus_dir: str, tokenizer_dir: str, out: str, workers: int) -> float:
    tasks = len([n for n in os.listdir(corpus_dir) if n.endswith(".jsonl")])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([datatrove_path, os.environ.get("PYTHONPATH", "")]), "RAYON_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", _DATATROVE, corpus_dir, os.path.join(tokenizer_dir, "tokenizer.json"), out, str(workers), str(tasks)], env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main(argv=None) -> int:
    from bench.corpus import write_corpus

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=5, help="size of the 1x corpus in MB of JSONL (the 4x run uses 4 times this). Default: 5.")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes (tokenmill, datatrove) and raw tokenizer threads. Default: all cores.")
    parser.add_argument("--vocab-size", type=int, default=8000, help="the BPE's vocabulary. Default: 8000.")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts. Default: 2.")
    parser.add_argument("--datatrove-path", help="a directory datatrove is installed in (pip install --target); without it datatrove is skipped.")
    parser.add_argument("--json", default="bench-tokenizers-file.json", help="where to write the results.")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="tokenmill-bench-bpe-")
    corpora = {}
    for scale, megabytes, files in (("tiny", 0.05, 1), ("1x", args.mb, 2), ("4x", args.mb * 4, 8)):
        corpora[scale] = {"dir": os.path.join(workdir, f"corpus-{scale}")}
        write_corpus(corpora[scale]["dir"], megabytes, files=files)
    tokenizer_dir = train_tokenizer(corpora["1x"]["dir"], args.vocab_size, os.path.join(workdir, "bpe"))
    raw = raw_rate(corpora["1x"]["dir"], tokenizer_dir, args.workers, args.repeat)
    corpora["1x"]["tokens"] = raw["tokens"]
    corpora["4x"]["tokens"] = raw_rate(corpora["4x"]["dir"], tokenizer_dir, args.workers, 1)["tokens"]
    one_thread = raw_rate(corpora["1x"]["dir"], tokenizer_dir, 1, args.repeat)["tokens_per_s"]
    print(f"raw encode_batch: {raw['tokens_per_s']:,.0f} tokens/s on {args.workers} threads, {one_thread:,.0f} on 1", flush=True)
    rows = {}
    runner = Runner("local", args.workers)
    for objective in OBJECTIVES:
        extra = ["--inputs-length", "512"] if objective == "span_corruption" else ["--seq-len", "1024"]
        r = measure(objective, corpora, tokenizer_dir, workdir, runner, args.repeat, extra)
        rows[objective] = r["steady_tokens_per_s"]
        print(f"tokenmill {objective}: {r['steady_tokens_per_s']:,} tokens/s steady ({r['seconds_1x']} s at 1x, {r['seconds_4x']} s at 4x), ratio {r['steady_tokens_per_s'] / raw['tokens_per_s']:.2f}", flush=True)
    if args.datatrove_path:
        seconds = {scale: min(datatrove_seconds(args.datatrove_path, corpora[scale]["dir"], tokenizer_dir, os.path.join(workdir, f"dt-{scale}"), args.workers) for _ in range(args.repeat)) for scale in ("1x", "4x")}
        rows["datatrove"] = round((corpora["4x"]["tokens"] - corpora["1x"]["tokens"]) / (seconds["4x"] - seconds["1x"]))
        print(f"datatrove DocumentTokenizer: {rows['datatrove']:,} tokens/s steady ({seconds['1x']:.2f} s at 1x, {seconds['4x']:.2f} s at 4x), ratio {rows['datatrove'] / raw['tokens_per_s']:.2f}; tokenmill clm / datatrove {rows['clm'] / rows['datatrove']:.2f}", flush=True)
    with open(args.json, "w") as f:
        json.dump({"mb_1x": args.mb, "workers": args.workers, "vocab_size": args.vocab_size, "raw_tokens_per_s": round(raw["tokens_per_s"]), "raw_one_thread_tokens_per_s": round(one_thread), "steady_tokens_per_s": rows}, f, indent=2)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
