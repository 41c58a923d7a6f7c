"""The `tokenmill` command line.

    tokenmill build [options] [Beam options]     build a corpus version (the sample corpus by default)
    tokenmill rebuild [options] [Beam options]   the same, only if anything changed; publish, keep the newest --keep
    tokenmill verify OUT [--clean]               check a version's files against its manifest (and remove failed builds)
    tokenmill show OUT [options]                 print examples decoded with the build's tokenizer
    tokenmill report OUT [--html FILE]           measure the examples: a terminal table or one HTML page of plots
    tokenmill train-tokenizer [options]          train a SentencePiece model or a byte-level BPE, every special token reserved

Every option not listed by `tokenmill build --help` (or `rebuild --help`) is passed to Beam's
PipelineOptions (`--runner`, `--direct_num_workers`, `--project`, ...); a
flag that neither tokenmill nor Beam knows is an error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from typing import Any, Sequence

from pipelines.config import DEFAULT_OUTPUT, BuildConfig
from pipelines.rebuild import DEFAULT_KEEP
from runners.local import FREEZE_HEAP
from transforms.objectives import BERT_OBJECTIVES as BERT
from transforms.objectives import OBJECTIVES
from transforms.errors import ConfigError
from transforms.publish_guard import DEFAULT_MAX_DROP_FRACTION, NotPublishable
from transforms.read import READ_FORMATS
from transforms.vocab import DEFAULT_EXTRA_IDS
from transforms.write import DEFAULT_FORMATS, FORMATS, TFRECORD_COMPRESSIONS

CLM = ("clm",)
T5 = ("span_corruption", "prefix_lm", "ul2")

# Objective flags: dest -> the objectives it applies to. Giving one to another objective is an error.
OBJECTIVE_FLAGS: dict[str, tuple[str, ...]] = {
    "seq_len": CLM + BERT,
    "packing": CLM,
    "max_predictions": BERT,
    "masked_lm_prob": BERT,
    "short_seq_prob": BERT,
    "dupe_factor": BERT,
    "whole_word_mask": BERT,
    "masking": BERT,
    "inputs_length": T5,
    "targets_length": T5,
    "noise_density": ("span_corruption",),
    "mean_noise_span_length": ("span_corruption",),
    "random_roll": ("span_corruption", "ul2"),
    "prefix_layout": ("prefix_lm",),
    "ul2_denoisers": ("ul2",),
    "mode_tokens": ("ul2",),
    "add_bos": CLM,
}

# Special-token roles that can be named by flag (--pad-token ...), and what each is.
TOKEN_ROLE_FLAGS = {"pad": "padding", "eos": "end-of-document", "bos": "beginning-of-document", "unk": "unknown", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(FORMATS)}, got {text!r}")
    return formats


def _add_build_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("input")
    data.add_argument("--input", action="append", default=[], metavar="GLOB", help="input files: a glob, or a directory for its files of known formats (dir/** for every file under it); repeatable; local paths or any Beam filesystem such as gs://. Default: the built-in sample corpus (Python's own docstrings).")
    data.add_argument("--input-format", default="auto", choices=("auto",) + READ_FORMATS, help="jsonl (one JSON object a line), text (BERT format: one sentence a line, blank line between documents), parquet, or tfrecord (tf.train.Example with a bytes text feature); auto infers it from the extension. .gz and .zst are decompressed. Default: auto.")
    data.add_argument("--text-field", default="text", help="JSON field / Parquet column / Example feature holding the text. Default: text.")
    data.add_argument("--id-field", default="id", help="JSON field / Parquet column / Example feature holding a stable document id ('' for none: the doc key is then a hash of the text). Default: id.")
    data.add_argument("--max-drop-fraction", type=_probability, default=DEFAULT_MAX_DROP_FRACTION, metavar="F", help="refuse to publish (one line naming the top drop reason and its fix; LATEST stays) when more than this share of the records is dropped; a build with an empty split is refused too. Default: 0.5.")
    data.add_argument("--max-document-bytes", type=_positive_int, default=8 << 20, help="documents larger than this are dead-lettered as document_too_large. Default: 8 MiB.")

    tok = parser.add_argument_group("tokenizer")
    tok.add_argument("--tokenizer", metavar="FILE|DIR", help="a SentencePiece .model, a Hugging Face tokenizers file (tokenizer.json, any name), or a directory holding tokenizer.json; the kind is read from the file; required with --input (`tokenmill train-tokenizer` makes one). Default, for the sample corpus only: a SentencePiece model trained on it on first use (cached).")
    for role, token in TOKEN_ROLE_FLAGS.items():
        tok.add_argument(f"--{role}-token", metavar="TOKEN", help=f"the tokenizer's {token} token, by its text (it must exist in the tokenizer); overrides tokenizer_config.json / special_tokens_map.json.")
    tok.add_argument("--extra-ids", type=int, metavar="N", help=f"number of <extra_id_k> sentinels (taken from the model or appended T5-style). Default: {DEFAULT_EXTRA_IDS}, or more if the objective needs more.")

    obj = parser.add_argument_group("objective")
    obj.add_argument("--objective", default="clm", choices=sorted(OBJECTIVES), help="what to build. Default: clm.")
    obj.add_argument("--seq-len", type=_positive_int, help="row length for clm (default 1024) and the BERT objectives (default 512).")
    obj.add_argument("--add-bos", action="store_true", default=None, help="clm: prepend the tokenizer's bos to each document (Llama-style); eos is appended either way.")
    obj.add_argument("--packing", choices=("concat", "best_fit"), help="clm: concat cuts the document stream into rows; best_fit packs whole documents (best-fit decreasing). Default: concat.")
    obj.add_argument("--max-predictions", type=_positive_int, help="BERT: masked positions per sequence. Default: seq_len x masked_lm_prob (76 for 512).")
    obj.add_argument("--masked-lm-prob", type=_probability, help="BERT: share of tokens to mask. Default: 0.15.")
    obj.add_argument("--short-seq-prob", type=_probability, help="BERT: probability of a shorter target length. Default: 0.1.")
    obj.add_argument("--dupe-factor", type=_positive_int, help="BERT: copies of the data, each with its own instances and masks (as BERT's dupe_factor). Default: 1.")
    obj.add_argument("--whole-word-mask", action="store_true", default=None, help="BERT: mask whole SentencePiece words.")
    obj.add_argument("--masking", choices=("static", "none"), help="BERT: static writes masked features; none writes unmasked sequences for on-the-fly masking. Default: static.")
    obj.add_argument("--inputs-length", type=_positive_int, help="T5 objectives: length of `inputs`. Default: 512.")
    obj.add_argument("--targets-length", type=_positive_int, help="T5 objectives: length of `targets`. Default: derived from the inputs length by T5's random_spans_helper: span_corruption's (114 at --inputs-length 512, 29 at 128), for ul2 the largest any denoiser needs (512 at 512, 127 at 128); the inputs length for prefix_lm.")
    obj.add_argument("--noise-density", type=_probability, help="span_corruption: share of noise tokens. Default: 0.15.")
    obj.add_argument("--mean-noise-span-length", type=float, help="span_corruption: mean noise span length. Default: 3.")
    obj.add_argument("--random-roll", action="store_true", default=None, help="span_corruption/ul2: rotate the noise mask by a random offset (T5's random_roll).")
    obj.add_argument("--prefix-layout", choices=("encoder_decoder", "decoder_only"), help="prefix_lm: inputs/targets, or one sequence with loss_mask and prefix_length. Default: encoder_decoder.")
    obj.add_argument("--ul2-denoisers", metavar="JSON|FILE", help="ul2: the denoiser table and rates, inline JSON or a .json file. Default: the seven UL2 denoisers, uniform.")
    obj.add_argument("--mode-tokens", action=argparse.BooleanOptionalAction, default=None, help="ul2: prepend [NLU]/[NLG]/[S2S] to inputs. Default: on.")

    out = parser.add_argument_group("output")
    out.add_argument("--output", default=DEFAULT_OUTPUT, metavar="DIR", help=f"output root (local or gs://); versions go to DIR/versions/<version>/ and DIR/LATEST names the newest. Default: ./{DEFAULT_OUTPUT}.")
    out.add_argument("--formats", type=_formats, default=DEFAULT_FORMATS, help="comma-separated: tfrecord, parquet, array_record (random access for Grain; the TFRecord shards' records). Default: tfrecord,parquet.")
    out.add_argument("--num-shards", type=_positive_int, help="train shards per format. Default: from the input size, one per 256 MiB, at least 16 while each gets 16 MiB (a small corpus gets one per 16 MiB; docs/scaling.md).")
    out.add_argument("--num-validation-shards", type=_positive_int, help="validation shards per format. Default: num_shards x validation_fraction (at least 1) when --num-shards is given, else from the validation share of the input as for --num-shards.")
    out.add_argument("--validation-fraction", type=float, default=0.01, help="share of documents (by doc-key hash) in validation. Default: 0.01.")
    out.add_argument("--compression", default="none", choices=TFRECORD_COMPRESSIONS, help="TFRecord compression. Default: none.")
    out.add_argument("--version", help="name of the version directory. Default: <UTC time>-<fingerprint>.")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="all randomness derives from it. Default: 0.")
    run.add_argument("--num-buckets", type=_positive_int, help="hash buckets documents are mixed in. Default: one per 4 MiB of input.")
    run.add_argument("--read-range-mb", type=_positive_int, default=4, help="uncompressed JSONL files are read in ranges of this size in parallel; a file read whole (compressed, text, TFRecord) bigger than this is tokenized by every worker. The output does not depend on it. Default: 4.")
    run.add_argument("--shared-filesystem", action="store_true", help="local --input and --output paths are on storage every worker of the runner mounts at the same path (NFS, Lustre), e.g. a Dask cluster's; otherwise a runner whose workers may be on other machines takes only object store paths such as gs://.")
    run.add_argument("--no-progress", action="store_true", help="do not print progress lines.")
    run.add_argument("--verbose", action="store_true", help="show Beam's own logging (otherwise kept in a temporary file, printed on failure).")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """A `BuildConfig` from parsed flags; objective flags given to the wrong objective are errors."""
    if args.input and not args.tokenizer:
        raise ConfigError(
            "--input needs --tokenizer MODEL: the sample corpus's tokenizer does not fit your data; "
            "pass a SentencePiece model, or make one with `tokenmill train-tokenizer --input ... --output spm.model`"
        )
    options = {dest: getattr(args, dest) for dest in OBJECTIVE_FLAGS if getattr(args, dest) is not None}
    for dest in options:
        if args.objective not in OBJECTIVE_FLAGS[dest]:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(f"{flag} applies to {', '.join(OBJECTIVE_FLAGS[dest])}, not to --objective {args.objective}")
    return BuildConfig(
        objective=args.objective,
        inputs=tuple(args.input),
        input_format=args.input_format,
        text_field=args.text_field,
        id_field=args.id_field or None,
        tokenizer=args.tokenizer,
        output=args.output,
        formats=tuple(args.formats),
        num_shards=args.num_shards,
        num_validation_shards=args.num_validation_shards,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        compression=args.compression,
        num_buckets=args.num_buckets,
        max_document_bytes=args.max_document_bytes,
        read_range_mb=args.read_range_mb,
        extra_ids=args.extra_ids,
        special_tokens={role: getattr(args, f"{role}_token") for role in TOKEN_ROLE_FLAGS if getattr(args, f"{role}_token") is not None},
        version=args.version,
        max_drop_fraction=args.max_drop_fraction,
        objective_options=options,
    )


def summary(manifest: dict[str, Any], seconds: float) -> str:
    c = manifest["counters"]
    dropped = ", ".join(f"{k} {v:,}" for k, v in c["documents_dropped"].items())
    lines = [
        f"Built {manifest['objective']['name']} in {seconds:.1f} s: {c['records_read']:,} records read, "
        f"{c['documents_used']:,} documents used, {c['documents_dropped_total']:,} dropped" + (f" ({dropped})" if dropped else ""),
    ]
    for split, t in manifest["totals"].items():
        shards = " + ".join(f"{n} {fmt}" for fmt, n in sorted(t["shards"].items()))
        lines.append(f"  {split}: {t['examples']:,} examples, {t['tokens']:,} tokens, padding {t['padding_fraction']:.2%}, {shards} shards")
    for key, value in c["objective_summary"].items():
        lines.append(f"  {key}: {value:.4g}")
    return "\n".join(lines)


def _launch_config(args: argparse.Namespace, beam_args: list[str], parser: argparse.ArgumentParser) -> BuildConfig:
    """The build's config, once the Beam flags are known and the runner can run it."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from runners.remote import check_remote_runner
    from runners.local import is_dask, unknown_beam_args

    ours = [o for action in parser._actions for o in action.option_strings]  # noqa: SLF001
    unknown = unknown_beam_args(beam_args, ours)
    if unknown:
        parser.error(f"unrecognised arguments (neither tokenmill nor Beam options): {' '.join(unknown)}")
    config = config_from_args(args)
    check_remote_runner(config.inputs, config.output, beam_args, args.shared_filesystem)
    options = PipelineOptions(beam_args)
    if is_dask(options):
        from runners.dask import check_scheduler

        check_scheduler(options)
    return config


def _print_result(manifest: dict[str, Any] | None, location: str, beam_args: list[str], seconds: float) -> None:
    if manifest is None:
        from apache_beam.options.pipeline_options import PipelineOptions, TestOptions

        if PipelineOptions(beam_args).view_as(TestOptions).dry_run:
            print("Dry run: the pipeline was translated for the runner; nothing ran.")
        else:
            print(f"Submitted; the version appears at {location} when the job finishes.")
        return
    print(summary(manifest, seconds))
    print(f"Output: {location}")


def _build(args: argparse.Namespace, beam_args: list[str], parser: argparse.ArgumentParser) -> int:
    from pipelines.build import run_build

    config = _launch_config(args, beam_args, parser)
    started = time.monotonic()
    manifest, location = run_build(config, beam_args, show_progress=not args.no_progress, quiet=not args.verbose)
    _print_result(manifest, location, beam_args, time.monotonic() - started)
    return 0


def _rebuild(args: argparse.Namespace, beam_args: list[str], parser: argparse.ArgumentParser) -> int:
    from pipelines.rebuild import run_rebuild

    config = _launch_config(args, beam_args, parser)
    started = time.monotonic()
    outcome = run_rebuild(config, args.keep, beam_args, show_progress=not args.no_progress, quiet=not args.verbose)
    if outcome.up_to_date:
        done = "submitted a job that verifies it" if outcome.verification_job else "no pipeline ran"
        print(f"Up to date: {outcome.reason} (same inputs, tokenizer, config and code); {done}.")
        print(f"Output: {outcome.location}")
        return 0
    print(f"Rebuilding: {outcome.reason}.")
    _print_result(outcome.manifest, outcome.location, beam_args, time.monotonic() - started)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pipelines.verify import verify_version
    from transforms.manifest import remove_incomplete_versions

    if args.clean:
        removed = remove_incomplete_versions(args.path.rstrip("/"))
        print(f"Removed {len(removed)} incomplete version(s)" + (f": {', '.join(removed)}" if removed else ""))
    report = verify_version(args.path)
    print(report.text())
    return 0 if report.ok else 1


def _show(args: argparse.Namespace) -> int:
    from pipelines.inspect.show import show

    show(args.path, args.split, args.n, args.index, args.shard, args.format, args.tokenizer, args.json)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pipelines.inspect.report import report

    report(args.path, args.html, args.sample, args.format, args.tokenizer)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    """`show` or `report`; a damaged file, a wrong tokenizer or a bad index is one line on stderr and exit 1."""
    from pipelines.inspect.shards import BadShard
    from pipelines.inspect.tokens import TokenizerMismatch

    try:
        return _show(args) if args.command == "show" else _report(args)
    except (BadShard, TokenizerMismatch, IndexError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"tokenmill {args.command}: error: {e}", file=sys.stderr)
        return 1


def _add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    """What `show` and `report` share: which version, which format, which tokenizer."""
    from pipelines.inspect.shards import FORMATS as READABLE_FORMATS

    parser.add_argument("path", metavar="OUT", help="an output root (its LATEST version) or a version directory; local or gs://.")
    parser.add_argument("--format", default="parquet", choices=READABLE_FORMATS, help="which shards to read. Default: parquet.")
    parser.add_argument("--tokenizer", metavar="FILE", help="the tokenizer file to decode with (its sha256 must be the manifest's). Default: the copy the version holds.")


def _train_tokenizer(args: argparse.Namespace) -> int:
    from pipelines.build import match_inputs
    from pipelines.tokenizer import SampleProgress, piece_count, printing_every, sample_ranges, sample_texts, token_count, train_byte_level_bpe, train_sentencepiece
    from transforms.read import InputSpec
    from transforms.storage import join, write_bytes

    files = [(meta.path, meta.size_in_bytes) for meta in match_inputs(tuple(args.input), args.input_format)]
    ranges = sample_ranges(files, args.input_format, args.read_mb << 20)
    progress = SampleProgress(sum(r.size for r in ranges))
    print(f"Sampling {args.sample_size:,} documents from {progress.total_bytes / 1e6:.1f} MB of {sum(size for _, size in files) / 1e6:.1f} MB of input ({len(ranges):,} ranges)", flush=True)
    with printing_every(progress.line):
        texts = sample_texts(ranges, InputSpec(args.text_field, args.id_field or None), args.sample_size, progress)
    if not texts:
        raise ConfigError("the inputs hold no usable documents to train on")
    started = time.monotonic()
    with printing_every(lambda: f"  training on {len(texts):,} documents: {time.monotonic() - started:.0f} s"):
        if args.kind == "bpe":
            files = train_byte_level_bpe(texts, args.vocab_size, args.extra_ids)
        else:
            files = {"": train_sentencepiece(texts, args.vocab_size, args.extra_ids, args.threads)}
    for name, data in files.items():
        write_bytes(join(args.output, name) if name else args.output, data)
    if args.kind == "bpe":
        size, what = token_count(files["tokenizer.json"]), "byte-level BPE tokenizer.json"
    else:
        size, what = piece_count(files[""]), "SentencePiece model"
    fewer = f" (asked for {args.vocab_size:,}: the sample holds no more)" if size < args.vocab_size else ""
    print(f"Trained a {size:,}-piece {what}{fewer} on {len(texts):,} documents: {args.output}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenmill", description="Turn raw text corpora into sharded pre-training examples (TFRecord + Parquet) with Apache Beam.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="build a corpus version",
        description="Build one version of a pre-training corpus. Options not listed here go to Beam (e.g. --runner DataflowRunner --project P --region R --temp_location gs://B/tmp --setup_file ./setup.py, or --runner DaskRunner --dask_client_address tcp://HOST:8786 for a Dask cluster). Without --runner it runs locally on every core.",
    )
    _add_build_arguments(build)
    rebuild = commands.add_parser(
        "rebuild",
        help="build a new version if anything changed, publish it, prune old ones",
        description=(
            "Rebuild a corpus: if the inputs (sizes and content hashes, or object checksums), the tokenizer, the config "
            "or the code changed since the version LATEST names, build a new version, verify every file, point LATEST "
            "at it and delete complete versions beyond --keep (never the one LATEST names) and leftovers of killed runs. "
            "Otherwise say so and run nothing. Takes every build option; options not listed here go to Beam."
        ),
    )
    _add_build_arguments(rebuild)
    rebuild.add_argument_group("versions").add_argument(
        "--keep", type=_positive_int, default=DEFAULT_KEEP, metavar="N", help=f"complete versions to keep, the new one included. Default: {DEFAULT_KEEP}."
    )
    verify = commands.add_parser(
        "verify",
        help="check a version against its manifest",
        description="Check every file of a version against its manifest: presence, size, sha256, example counts, TFRecord CRCs, Parquet footers. Exits 1 with a report naming each bad file.",
    )
    verify.add_argument("path", metavar="OUT", help="an output root (its LATEST version is checked) or a version directory; local or gs://.")
    verify.add_argument("--clean", action="store_true", help="first remove what failed builds left in the output root OUT: every version without a manifest (shards and temporary files) except the one LATEST names, and the .tmp/ prefix of a complete version whose publish was killed. Run it only while no build writes to OUT.")
    show = commands.add_parser("show", help="print examples decoded", description="Print examples of a published version decoded with the build's own tokenizer: clm pieces and document starts, BERT segments with each prediction (mask / random / kept) and the NSP/SOP label, T5/UL2 sentinels with the spans they hide, prefix | target.")
    _add_inspect_arguments(show)
    show.add_argument("--split", default="train", help="train or validation. Default: train.")
    show.add_argument("-n", type=_positive_int, default=1, help="examples to print. Default: 1.")
    show.add_argument("--index", type=int, default=0, help="the first example: its position in the split (shards in order, by the manifest's counts), or in --shard. Default: 0.")
    show.add_argument("--shard", type=int, help="count --index inside this shard number.")
    show.add_argument("--json", action="store_true", help="one JSON object per example (text and pieces of every part).")
    report = commands.add_parser("report", help="measure a version: terminal table or HTML page", description="Measure the examples of a published version (padding, lengths, masks, labels, noise, denoisers, frequent tokens) beside the configured values: a table in the terminal, or with --html one self-contained HTML page of plots.")
    _add_inspect_arguments(report)
    report.add_argument("--html", metavar="FILE", help="write the HTML page here (needs matplotlib: pip install 'tokenmill[report]').")
    report.add_argument("--sample", type=_positive_int, metavar="N", help="measure N examples per split spread evenly over it, not all.")
    train = commands.add_parser("train-tokenizer", help="train a SentencePiece model or a byte-level BPE", description="Train a SentencePiece unigram model (or, with --kind bpe, a byte-level BPE tokenizer.json) on a deterministic sample of the inputs, reserving every special token tokenmill uses ([CLS] [SEP] [MASK] [NLU] [NLG] [S2S] <extra_id_k>).")
    train.add_argument("--input", action="append", required=True, metavar="GLOB", help="input files, as for build (repeatable).")
    train.add_argument("--input-format", default="auto", choices=("auto",) + READ_FORMATS, help="as for build. Default: auto.")
    train.add_argument("--text-field", default="text", help="as for build. Default: text.")
    train.add_argument("--id-field", default="id", help="as for build. Default: id.")
    train.add_argument("--kind", default="sentencepiece", choices=("sentencepiece", "bpe"), help="sentencepiece: a unigram .model (pad 0, eos 1, unk 2); bpe: a byte-level BPE (GPT-2 style) tokenizer.json with a tokenizer_config.json naming its pad and eos. Default: sentencepiece.")
    train.add_argument("--output", required=True, metavar="PATH", help="where to write the .model file, or with --kind bpe the directory for tokenizer.json (local or gs://); --tokenizer takes either.")
    train.add_argument("--vocab-size", type=_positive_int, default=32000, help="pieces in the model. Default: 32000.")
    train.add_argument("--extra-ids", type=int, default=DEFAULT_EXTRA_IDS, help=f"sentinels <extra_id_0..N-1> to reserve. Default: {DEFAULT_EXTRA_IDS}.")
    train.add_argument("--sample-size", type=_positive_int, default=200_000, help="documents to train on (those with the smallest key hashes among what --read-mb reads). Default: 200000.")
    train.add_argument("--read-mb", type=_positive_int, default=1024, metavar="MB", help="read at most this much input to pick the sample from: 4 MiB ranges chosen by hash over all the inputs (all of it when it is smaller). Default: 1024.")
    train.add_argument("--threads", type=_positive_int, help="training threads. Default: all cores.")
    return parser


def subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return commands.choices[name]


def main(argv: Sequence[str] | None = None) -> int:
    importlib.import_module(FREEZE_HEAP)  # this process ends with the command: skip the garbage collections of its exit

    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "build":
            return _build(args, extra, subcommand(parser, "build"))
        if args.command == "rebuild":
            return _rebuild(args, extra, subcommand(parser, "rebuild"))
        if extra:
            parser.error(f"unrecognised arguments: {' '.join(extra)}")
        if args.command == "verify":
            return _verify(args)
        if args.command in ("show", "report"):
            return _inspect(args)
        return _train_tokenizer(args)
    except ConfigError as e:
        print(f"tokenmill: error: {e}", file=sys.stderr)
        return 2
    except NotPublishable as e:
        print(f"tokenmill: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
