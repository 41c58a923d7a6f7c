"""The sha256 of every shard of every objective and format, to show a change leaves the bytes alone.

    python -m bench.same_bytes --write before.json     # on the reference tree (e.g. main)
    python -m bench.same_bytes --compare before.json   # on the changed tree

Each case builds the first `--kb` KB of the sample corpus with small lengths
(seq_len 128, inputs 128) into its own output root, with a fixed version
name, and hashes every file of the version but the manifest (which records
times and the code version). `--compare` prints each file whose hash
differs, is missing or is new, and exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ALL_FORMATS = "tfrecord,parquet,array_record"
SHORT = ["--seq-len", "128"]
T5_SHORT = ["--inputs-length", "128", "--targets-length", "32"]

CASES: dict[str, list[str]] = {
    "clm_concat": ["--objective", "clm", "--packing", "concat", *SHORT, "--formats", ALL_FORMATS],
    "clm_best_fit": ["--objective", "clm", "--packing", "best_fit", *SHORT],
    "clm_gzip": ["--objective", "clm", *SHORT, "--formats", "tfrecord", "--compression", "gzip"],
    "mlm": ["--objective", "mlm", *SHORT, "--formats", ALL_FORMATS],
    "mlm_nsp": ["--objective", "mlm_nsp", *SHORT],
    "mlm_sop": ["--objective", "mlm_sop", *SHORT, "--whole-word-mask"],
    "span_corruption": ["--objective", "span_corruption", *T5_SHORT, "--formats", ALL_FORMATS],
    "prefix_lm": ["--objective", "prefix_lm", "--inputs-length", "128"],
    "prefix_lm_decoder_only": ["--objective", "prefix_lm", "--inputs-length", "128", "--prefix-layout", "decoder_only"],
    "ul2": ["--objective", "ul2", "--inputs-length", "128", "--targets-length", "128"],
}


def small_corpus(path: str, kilobytes: int) -> None:
    """The first whole lines of the sample corpus up to `kilobytes` KB."""
    from pipelines.sample import sample_corpus_path

    budget = kilobytes << 10
    with open(sample_corpus_path(), "rb") as src, open(path, "wb") as dst:
        for line in src:
            if budget < len(line):
                break
            dst.write(line)
            budget -= len(line)


def shard_hashes(version_dir: str) -> dict[str, str]:
    hashes = {}
    for directory, _, files in os.walk(version_dir):
        for name in sorted(files):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, version_dir)
            if relative.startswith("manifest"):
                continue
            with open(path, "rb") as f:
                hashes[relative] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def build_all(kilobytes: int, cases: list[str]) -> dict[str, dict[str, str]]:
    from pipelines.sample import sample_tokenizer_path

    tokenizer = sample_tokenizer_path()
    results = {}
    with tempfile.TemporaryDirectory(prefix="same-bytes-") as tmp:
        corpus = os.path.join(tmp, "corpus.jsonl")
        small_corpus(corpus, kilobytes)
        for case in cases:
            output = os.path.join(tmp, case)
            command = [
                sys.executable, "-m", "pipelines.cli", "build", "--input", corpus, "--tokenizer", tokenizer,
                "--output", output, "--version", "v", "--num-shards", "2", "--num-validation-shards", "1",
                "--num-buckets", "4", "--no-progress", *CASES[case], "--direct_num_workers=1",
            ]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            results[case] = shard_hashes(os.path.join(output, "versions", "v"))
            print(f"{case}: {len(results[case])} files", file=sys.stderr)
    return results


def differences(reference: dict[str, dict[str, str]], current: dict[str, dict[str, str]]) -> list[str]:
    lines = []
    for case in sorted(set(reference) | set(current)):
        before, after = reference.get(case, {}), current.get(case, {})
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                state = "missing" if name not in after else "new" if name not in before else "differs"
                lines.append(f"{case}/{name}: {state}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="JSON", help="record the hashes here")
    action.add_argument("--compare", metavar="JSON", help="compare the hashes with these")
    parser.add_argument("--kb", type=int, default=600, help="KB of the sample corpus to build. Default: 600.")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (repeatable). Default: all.")
    args = parser.parse_args(argv)
    cases = args.case or list(CASES)
    current = build_all(args.kb, cases)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            json.dump(current, f, indent=1, sort_keys=True)
        print(f"{sum(map(len, current.values()))} files of {len(current)} cases recorded in {args.write}")
        return 0
    with open(args.compare, encoding="utf-8") as f:
        reference = {case: files for case, files in json.load(f).items() if case in cases}
    lines = differences(reference, current)
    print("\n".join(lines) if lines else f"same bytes: {sum(map(len, current.values()))} files of {len(current)} cases")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
