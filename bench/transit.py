"""Transit reads of a build at the bucket and shard density of a 1 TB corpus: shuffle keys per group (the default) against a key per bucket and shard.

    python -m bench.transit --mb 20 --workers 2

At 1 TB a worker's 32 MiB hold of tokenized documents spreads over 238,419
buckets, about one document each, and a hold of examples over 3,726
shards. A corpus of `--mb` MB with `--num-buckets` (65,536 by default) and
`--num-shards` (1,024) gives its holds the same density. It is built twice:
with the shuffle keys the plan chooses (`pipelines.config.members_per_group`)
and with one key per bucket and per shard (what tokenmill did before). For
each it prints the transit reads (Beam's `tokenmill/transit_read_bytes`
distribution: how many, their mean and total size; on an object store each
is a request), the wall time, and whether the two builds wrote the same
shards (their sha256s in the manifests).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time


def build(plan, workers: int) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    from pipelines.build import BuildCorpus
    from runners.local import run
    from readers.manifest import Corpus

    started = time.perf_counter()
    result = run(lambda p, progress_dir: p | BuildCorpus(plan, progress_dir), [f"--direct_num_workers={workers}"], plan.input_bytes, show_progress=False)
    seconds = time.perf_counter() - started
    steps = result.metrics().query(MetricsFilter().with_namespace("tokenmill").with_name("transit_read_bytes"))["distributions"]
    count, total = sum(d.committed.count for d in steps), sum(d.committed.sum for d in steps)
    by_step = {d.key.step: d.committed.count for d in steps}
    shards = {e["path"]: e["sha256"] for e in Corpus(plan.output).manifest["shards"]}
    return {"seconds": round(seconds, 1), "reads": count, "mean_read_kb": round(total / max(1, count) / 1e3, 1), "read_mb": round(total / 1e6, 1), "reads_by_step": by_step, "shards": shards}


def main(argv=None) -> int:
    from bench.corpus import write_corpus
    from pipelines.build import plan_build
    from pipelines.config import BuildConfig
    from pipelines.sample import sample_tokenizer_path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20, help="corpus size in MB of JSONL. Default: 20.")
    parser.add_argument("--num-buckets", type=int, default=65_536, help="buckets: 65,536 puts about one document of a hold in each, as 1 TB does. Default: 65536.")
    parser.add_argument("--num-shards", type=int, default=1_024, help="train shards. Default: 1024.")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes. Default: all cores.")
    parser.add_argument("--json", default="bench-transit.json", help="where to write the results. Default: bench-transit.json.")
    parser.add_argument("--workdir", help="scratch directory (corpus and outputs). Default: a temporary directory.")
    args = parser.parse_args(argv)

    workdir = args.workdir or tempfile.mkdtemp(prefix="tokenmill-transit-")
    corpus = os.path.join(workdir, "corpus")
    if not os.path.isdir(corpus):
        write_corpus(corpus, args.mb)
    config = BuildConfig(inputs=(os.path.join(corpus, "*.jsonl"),), tokenizer=sample_tokenizer_path(), num_buckets=args.num_buckets, num_shards=args.num_shards)
    rows = {}
    for keys in ("grouped", "per bucket and shard"):
        plan = plan_build(dataclasses.replace(config, output=os.path.join(workdir, keys.replace(" ", "-"))))
        if keys != "grouped":
            plan = dataclasses.replace(plan, buckets_per_group=1, shards_per_group=dict.fromkeys(plan.num_shards, 1))
        rows[keys] = {"buckets_per_group": plan.buckets_per_group, "shards_per_group": plan.shards_per_group, **build(plan, args.workers)}
        print(f"{keys:>22}: {rows[keys]['reads']:>7,} transit reads of {rows[keys]['mean_read_kb']:>7} KB on average ({rows[keys]['read_mb']} MB), {rows[keys]['seconds']} s", flush=True)
    same = rows["grouped"].pop("shards") == rows["per bucket and shard"].pop("shards")
    print(f"same shards: {same}")
    with open(args.json, "w") as f:
        json.dump({"mb": args.mb, "num_buckets": args.num_buckets, "num_shards": args.num_shards, "workers": args.workers, "same_shards": same, "runs": rows}, f, indent=1)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
