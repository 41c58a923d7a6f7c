"""Peak memory of each process of a build as the corpus grows, with one shard and with the default shard count.

    python -m bench.scale --mb 25 --workers 2

Builds `--objective` (clm by default) over a corpus of `--mb` MB and one of
4× that (made here as `bench.throughput` makes its corpora), each with
`--num-shards 1` (the whole corpus in one shard: the worst case for a
shard's writer) and with the shard count the build chooses from the data.
For each run it prints the peak resident memory of the launcher, of the
largest worker process and of the whole tree (`bench.memory.PeakMemory`),
the shard count and the wall time, and writes them as JSON. What must hold
(docs/scaling.md): with one shard, the largest process grows by at most 15 %
from 1× to 4×; with the default count, every process stays under 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

ALLOWED_GROWTH = 1.15
PROCESS_LIMIT = 1e9


def main(argv=None) -> int:
    from bench.corpus import write_corpus
    from bench.throughput import Runner, run_build
    from pipelines.sample import sample_tokenizer_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=25, help="size of the 1x corpus in MB of JSONL (the 4x run uses 4 times this). Default: 25.")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes. Default: all cores.")
    parser.add_argument("--objective", default="clm", help="what to build. Default: clm.")
    parser.add_argument("--json", default="bench-scale.json", help="where to write the results. Default: bench-scale.json.")
    parser.add_argument("--workdir", help="scratch directory (corpora and outputs). Default: a temporary directory.")
    args, extra = parser.parse_known_args(argv)

    workdir = args.workdir or tempfile.mkdtemp(prefix="tokenmill-scale-")
    model = sample_tokenizer_path()
    runner = Runner("local", args.workers)
    rows = []
    for scale, megabytes, files in (("1x", args.mb, 1), ("4x", args.mb * 4, 4)):
        corpus = os.path.join(workdir, f"corpus-{scale}")
        if not os.path.isdir(corpus):
            write_corpus(corpus, megabytes, files=files)
        for shards in ("1", "default"):
            out = os.path.join(workdir, f"out-{scale}-{shards}")
            flags = ["--num-shards", "1"] if shards == "1" else []
            run = run_build(args.objective, corpus, model, out, runner, [*flags, *extra])
            shutil.rmtree(out)
            peaks = run["process_peaks"]
            rows.append({
                "scale": scale,
                "num_shards": run["manifest"]["config"]["num_shards_by_split"]["train"],
                "shards_flag": shards,
                "seconds": round(run["seconds"], 1),
                "launcher_mb": round(run["launcher_peak"] / 1e6),
                "largest_process_mb": round(peaks[0] / 1e6),
                "process_mb": [round(p / 1e6) for p in peaks],
                "tree_mb": round(run["peak_rss"] / 1e6),
            })
            r = rows[-1]
            print(f"  {scale} shards={r['num_shards']}: largest process {r['largest_process_mb']} MB, launcher {r['launcher_mb']} MB, tree {r['tree_mb']} MB, {r['seconds']} s", flush=True)
    one = {r["scale"]: r for r in rows if r["shards_flag"] == "1"}
    growth = one["4x"]["largest_process_mb"] / one["1x"]["largest_process_mb"]
    largest_default = max(r["largest_process_mb"] for r in rows if r["shards_flag"] == "default")
    print(f"\n{'scale':<7}{'shards':>8}{'s':>7}{'launcher MB':>13}{'largest MB':>12}{'tree MB':>9}  every process MB")
    for r in rows:
        print(f"{r['scale']:<7}{r['num_shards']:>8}{r['seconds']:>7.1f}{r['launcher_mb']:>13,}{r['largest_process_mb']:>12,}{r['tree_mb']:>9,}  {r['process_mb']}")
    print(f"\none shard, largest process 4x / 1x: {growth:.2f} (must be at most {ALLOWED_GROWTH}) {'ok' if growth <= ALLOWED_GROWTH else 'FAILS'}")
    print(f"default shards, largest process: {largest_default} MB (must be under {PROCESS_LIMIT / 1e6:.0f}) {'ok' if largest_default < PROCESS_LIMIT / 1e6 else 'FAILS'}")
    with open(args.json, "w") as f:
        json.dump({"mb_1x": args.mb, "workers": args.workers, "objective": args.objective, "growth_one_shard": round(growth, 3), "runs": rows}, f, indent=2)
    print(f"Results: {args.json}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if growth <= ALLOWED_GROWTH and largest_default < PROCESS_LIMIT / 1e6 else 1


if __name__ == "__main__":
    sys.exit(main())
