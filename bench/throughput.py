"""Throughput of every objective as a ratio to raw SentencePiece encoding, measured in the same run.

    python -m bench.throughput --mb 100 --workers 2
    python -m bench.throughput --mb 25 --workers 2 --runner local,dask --objectives clm

For each objective, `tokenmill build` runs on the local runner (one worker
process per core, as a user runs it) over a corpus of `--mb` MB and one of
4× that (the sample corpus repeated with unique ids, made here, no
download). The cost of a run is start-up plus work proportional to the data,
so from the two runs (`--runner dask`: the same builds on a Dask cluster
of `--workers` single-threaded worker processes on this machine, started
once for the whole benchmark; its workers' memory counts in the peak):

    steady tokens/s = (tokens at 4×  −  tokens at 1×) / (seconds at 4×  −  seconds at 1×)
    intercept s     = seconds at 1×  −  tokens at 1× / steady tokens/s

The fixed cost of a run is also measured directly: `start-up s` is a build
over a corpus of about 50 KB (a dozen documents), which is all fixed cost;
the intercept estimates the same thing but multiplies the noise of two
timings, so it is shown only for comparison.

and ratio = steady tokens/s ÷ raw SentencePiece tokens/s, where the raw figure
is `encode(texts, num_threads=workers)` over the 1× texts with the same
model, measured before the first objective and again after each one; the
fastest of those measurements is the baseline for every ratio (the
conservative choice on a machine whose speed drifts). Each figure is the fastest of `--repeat` runs (timings on a shared
machine wander). The BERT objectives encode each sentence on its own, as
BERT's reference does, which costs SentencePiece more than whole texts; for
them a second figure, `ratio/sent`, divides by raw SentencePiece on the same
texts cut into those sentences (the splitting itself counts as pipeline
work). Peak memory is the resident set of the whole process tree
(launcher and workers), sampled every 50 ms, the highest of the runs; the
JSON also has the largest single process's own peak (`bench.memory`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench.memory import PeakMemory
from readers.manifest import Corpus

OBJECTIVES = ("clm", "mlm", "mlm_nsp", "span_corruption", "prefix_lm", "ul2")
TINY_MB = 0.05  # the start-up run: a dozen documents


def raw_tokenizer_rate(corpus_dir: str, model_path: str, threads: int, repeat: int, sentences: bool = False) -> tuple[int, float]:
    """(tokens, tokens/s) of SentencePiece alone on the corpus texts (or their sentences), the best of `repeat` runs."""
    import sentencepiece as spm

    texts = []
    for name in sorted(os.listdir(corpus_dir)):
        with open(os.path.join(corpus_dir, name), encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    if sentences:
        from transforms.sentences import split_sentences

        texts = [s for text in texts for s in split_sentences(text)]
    sp = spm.SentencePieceProcessor(model_file=model_path)
    sp.encode(texts[:2000], num_threads=threads)  # warm up
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        ids = sp.encode(texts, num_threads=threads)
        seconds.append(time.perf_counter() - start)
    tokens = sum(map(len, ids))
    return tokens, tokens / min(seconds)


class Runner:
    """Where a build runs: the local runner with `workers` processes, or a local Dask cluster of `workers` single-threaded worker processes.

    The Dask cluster is started once, so its workers have imported Beam and
    tokenmill before the first timed run, as a long-lived cluster has, and
    with the malloc settings the local runner gives its workers (without
    them, Dask's own `MALLOC_TRIM_THRESHOLD_=65536` cost a 25 MB clm build
    1.8x the workers' CPU: 390 k page faults instead of 50 k).
    """

    def __init__(self, name: str, workers: int):
        self.name = name
        self._workers = workers
        self._cluster = None
        self._memory = contextlib.ExitStack()
        if name == "dask":
            from distributed import LocalCluster

            from runners.local import lean_memory

            self._memory.enter_context(lean_memory())  # the workers (and any the nanny restarts) get the local runner's malloc settings
            self._cluster = LocalCluster(processes=True, n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0")

    def flags(self) -> list[str]:
        if self._cluster is None:
            return [f"--direct_num_workers={self._workers}"]
        return ["--runner", "DaskRunner", f"--dask_client_address={self._cluster.scheduler_address}"]

    def worker_pids(self) -> tuple[int, ...]:
        """The cluster's worker processes: their memory counts with the build's."""
        if self._cluster is None:
            return ()
        from distributed import Client

        with Client(self._cluster) as client:
            return tuple(client.run(os.getpid).values())

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
        self._memory.close()


def run_build(objective: str, corpus_dir: str, model_path: str, out: str, runner: Runner, extra: list[str]) -> dict:
    """One `tokenmill build` in a fresh process: wall seconds, peak memory, and its manifest."""
    cmd = [
        sys.executable, "-m", "pipelines.cli", "build", "--objective", objective,
        "--input", os.path.join(corpus_dir, "*.jsonl"), "--tokenizer", model_path, "--output", out,
        "--no-progress", *runner.flags(), *extra,
    ]
    start = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(process.pid, runner.worker_pids())
    memory.start()
    printed, _ = process.communicate()
    seconds = time.perf_counter() - start
    memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{printed}")
    return {"seconds": seconds, "peak_rss": memory.peak, "launcher_peak": memory.launcher_peak, "process_peaks": sorted(memory.process_peaks.values(), reverse=True), "manifest": Corpus(out).manifest}


def measure(objective: str, corpora: dict, model_path: str, workdir: str, runner: Runner, repeat: int, extra: list[str]) -> dict:
    """Every scale, each the fastest of `repeat` runs (this machine's timings wander by 10-20%)."""
    runs = {}
    for scale, corpus in corpora.items():
        out = os.path.join(workdir, f"out-{objective}-{scale}")
        attempts = []
        for _ in range(repeat):
            attempts.append(run_build(objective, corpus["dir"], model_path, out, runner, extra))
            attempts[-1]["bytes"] = sum(t["bytes"] for t in attempts[-1]["manifest"]["totals"].values())
            shutil.rmtree(out)
        runs[scale] = min(attempts, key=lambda r: r["seconds"])
        runs[scale]["peak_rss"] = max(r["peak_rss"] for r in attempts)
        runs[scale]["largest_process_peak"] = max(r["process_peaks"][0] for r in attempts)
    small, large = runs["1x"], runs["4x"]
    tokens_small, tokens_large = corpora["1x"]["tokens"], corpora["4x"]["tokens"]
    steady = (tokens_large - tokens_small) / (large["seconds"] - small["seconds"])
    return {
        "objective": objective,
        "runner": runner.name,
        "documents_1x": small["manifest"]["counters"]["records_read"],
        "documents_4x": large["manifest"]["counters"]["records_read"],
        "tokens_1x": tokens_small,
        "tokens_4x": tokens_large,
        "seconds_1x": round(small["seconds"], 2),
        "seconds_4x": round(large["seconds"], 2),
        "steady_tokens_per_s": round(steady),
        "startup_s": round(runs["tiny"]["seconds"], 2),
        "intercept_s": round(small["seconds"] - tokens_small / steady, 2),
        "peak_rss_mb_4x": round(large["peak_rss"] / 1e6),
        "largest_process_peak_mb_4x": round(large["largest_process_peak"] / 1e6),
        "output_mb_4x": round(large["bytes"] / 1e6),
        "memory_target_mb_4x": round((1e9 + 1.5 * large["bytes"]) / 1e6),
    }


def table(rows: list[dict]) -> str:
    header = (
        f"{'objective':<16}{'runner':<7}{'docs 4x':>10}{'tokens 4x':>12}{'s 1x':>8}{'s 4x':>8}{'steady tok/s':>14}{'raw tok/s':>12}{'ratio':>7}"
        f"{'ratio/sent':>11}{'start s':>8}{'icpt s':>7}{'peak MB':>9}{'target MB':>10}{'out MB':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        per_sentence = f"{r['ratio_to_sentence_encoding']:.2f}" if "ratio_to_sentence_encoding" in r else "-"
        lines.append(
            f"{r['objective']:<16}{r['runner']:<7}{r['documents_4x']:>10,}{r['tokens_4x']:>12,}{r['seconds_1x']:>8.1f}{r['seconds_4x']:>8.1f}"
            f"{r['steady_tokens_per_s']:>14,}{r['raw_tokenizer_tokens_per_s']:>12,}{r['ratio']:>7.2f}"
            f"{per_sentence:>11}{r['startup_s']:>8.1f}{r['intercept_s']:>7.1f}"
            f"{r['peak_rss_mb_4x']:>9,}{r['memory_target_mb_4x']:>10,}{r['output_mb_4x']:>8,}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench.corpus import write_corpus
    from pipelines.sample import sample_tokenizer_path
    from transforms.objectives import OBJECTIVES as AVAILABLE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100, help="size of the 1x corpus in MB of JSONL (the 4x run uses 4 times this). Default: 100.")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes and tokenizer threads. Default: all cores.")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help=f"comma-separated. Default: {','.join(OBJECTIVES)}.")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results. Default: bench-results.json.")
    parser.add_argument("--workdir", help="scratch directory (corpora and outputs). Default: a temporary directory.")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the fastest counts (peak memory: the highest). Default: 2.")
    parser.add_argument("--runner", default="local", help="comma-separated: local (the local runner, --workers processes), dask (a Dask cluster on this machine of --workers single-threaded worker processes), or both. Default: local.")
    args, extra = parser.parse_known_args(argv)
    if set(args.runner.split(",")) - {"local", "dask"}:
        parser.error(f"--runner takes local, dask or both, got {args.runner!r}")

    workdir = args.workdir or tempfile.mkdtemp(prefix="tokenmill-bench-")
    model = sample_tokenizer_path()
    corpora = {}
    for scale, megabytes, files in (("tiny", TINY_MB, 1), ("1x", args.mb, 1), ("4x", args.mb * 4, 4)):
        corpus_dir = os.path.join(workdir, f"corpus-{scale}")
        if not os.path.isdir(corpus_dir):
            write_corpus(corpus_dir, megabytes, files=files)
        corpora[scale] = {"dir": corpus_dir}
    corpora["4x"]["tokens"], _ = raw_tokenizer_rate(corpora["4x"]["dir"], model, args.workers, 1)
    raw_rates, sentence_rates = [], []
    by_sentence = any(AVAILABLE[o].uses_sentences for o in args.objectives.split(",") if o in AVAILABLE)

    def measure_raw() -> None:
        corpora["1x"]["tokens"], rate = raw_tokenizer_rate(corpora["1x"]["dir"], model, args.workers, args.repeat)
        raw_rates.append(rate)
        print(f"  raw SentencePiece on {args.workers} threads: {rate:,.0f} tokens/s", flush=True)
        if by_sentence:
            _, rate = raw_tokenizer_rate(corpora["1x"]["dir"], model, args.workers, args.repeat, sentences=True)
            sentence_rates.append(rate)
            print(f"  raw SentencePiece on the same texts' sentences: {rate:,.0f} tokens/s", flush=True)

    measure_raw()
    runners = [Runner(name, args.workers) for name in args.runner.split(",")]
    rows = []
    for objective in args.objectives.split(","):
        if objective not in AVAILABLE:
            print(f"{objective}: not built yet, skipped", flush=True)
            continue
        for runner in runners:
            print(f"Running {objective} at 1x and 4x on the {runner.name} runner ...", flush=True)
            rows.append(measure(objective, corpora, model, workdir, runner, args.repeat, extra))
            r = rows[-1]
            print(f"  {objective}: {r['steady_tokens_per_s']:,} tokens/s steady, start-up {r['startup_s']} s, peak {r['peak_rss_mb_4x']:,} MB", flush=True)
            measure_raw()
    for runner in runners:
        runner.close()
    raw_rate = max(raw_rates)
    for row in rows:
        row["raw_tokenizer_tokens_per_s"] = round(raw_rate)
        row["ratio"] = round(row["steady_tokens_per_s"] / raw_rate, 3)
        if AVAILABLE[row["objective"]].uses_sentences:
            row["raw_sentence_tokens_per_s"] = round(max(sentence_rates))
            row["ratio_to_sentence_encoding"] = round(row["steady_tokens_per_s"] / max(sentence_rates), 3)
    print()
    print(table(rows))
    with open(args.json, "w") as f:
        json.dump({"mb_1x": args.mb, "workers": args.workers, "runners": args.runner.split(","), "repeat": args.repeat, "raw_tokenizer_runs": [round(r) for r in raw_rates], "raw_sentence_runs": [round(r) for r in sentence_rates], "results": rows}, f, indent=2)
    print(f"\nResults: {args.json}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
