"""Plan a build (resolve inputs, tokenizer, objective, version) and compose the pipeline.

    files ─ PlanRanges ─ Reshuffle ─ Read ─┬─ Tokenize ───────────────────────────────────┬─(bucket group)─ GroupByKey ─ Objective ─(split, shard group)─ GroupByKey ─ WriteShards ─┬─ Verify ─┐
                                           └─ (big unsplit files) ─ Reshuffle ─ Tokenize ─┘                                               every shard ─ WriteEmptyShards (if none) ─┘          │
    dead letters (every step) ─ GroupByKey(reason) ─ WriteErrors ─ Verify ─────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┤
    counters (every step) ─ Sum ───────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┴─ Publish

Everything that can be decided before the pipeline runs is decided in
`plan_build`, in the launcher, so a bad flag, a missing file or an unusable
tokenizer fails at once, and every worker gets the same resolved plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import apache_beam as beam

from pipelines.config import BuildConfig, members_per_group
from pipelines.sample import cache_dir, sample_corpus_path, sample_tokenizer_path
from pipelines.verify import VerifyWritten
from transforms.counters import COUNTERS, SumCounters
from transforms.examples import MakeExamples
from transforms.errors import ConfigError
from transforms.extras import import_extra
from transforms.manifest import FORMAT_VERSION, MANIFEST, VERSIONS, Publish, Retention, code_version, utc_now
from transforms.objectives import OBJECTIVES
from transforms.objectives.base import Objective
from transforms.publish_guard import NotPublishable, refusal_line
from transforms.read import KNOWN_SUFFIXES, SPREAD, InputSpec, PlanRanges, ReadDocuments, infer_format
from transforms.storage import absolute, checksum, delete_tree, exists, has_files, is_remote, join, match, read_bytes, temporary_dir, write_bytes
from transforms.tokenize import TokenizeDocuments
from transforms.tokenizer import COPY_DIR, TokenizerError, TokenizerFiles, read_tokenizer_files
from transforms.vocab import DEFAULT_EXTRA_IDS, Vocab
from transforms.write import SortDeadLetters, WriteDeadLetters, WriteEmptyShards, WriteShard, key_by_window


PLAN_THREADS = 16  # files hashed, or object-store requests made, at once while planning


@dataclasses.dataclass
class BuildPlan:
    """A build with every choice resolved; what the pipeline is made from."""

    config: BuildConfig
    objective: Objective
    vocab: Vocab
    tokenizer: TokenizerFiles
    code: dict[str, str]
    input_spec: InputSpec
    inputs: list[dict[str, Any]]
    num_buckets: int
    num_shards: dict[str, int]
    buckets_per_group: int  # how the shuffles group buckets and shards: it cannot change the output
    shards_per_group: dict[str, int]
    output: str
    version: str
    fingerprint: str
    started_at: str

    @property
    def version_dir(self) -> str:
        return join(self.output, VERSIONS, self.version)

    @property
    def temporary_dir(self) -> str:
        """Transit files: removed by Publish, or with the whole version when a failed build is cleaned up."""
        return temporary_dir(self.version_dir)

    @property
    def input_bytes(self) -> int:
        return sum(f["size"] for f in self.inputs)

    def static_manifest(self) -> dict[str, Any]:
        """The parts of the manifest known before the run."""
        return {
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "objective": {"name": self.objective.name, "params": self.objective.params()},
            "config": {**self.config.fingerprint_fields(), "num_buckets": self.num_buckets, "num_shards_by_split": self.num_shards},
            "features": self.objective.schema.manifest_spec(),
            "tokenizer": {**self.tokenizer.manifest_entry(), "source": self.config.tokenizer, **self.vocab.manifest_entry()},
            "inputs": {"files": self.inputs, "total_bytes": self.input_bytes},
            "code": self.code,
            "started_at": self.started_at,
        }


def _directory_glob(pattern: str) -> str | None:
    """The glob for an `--input` naming a directory (`dir`, `dir/`: its files) or a tree (`dir/**`: every file under it); None for a plain glob."""
    if pattern.endswith("/**"):
        return pattern
    if pattern.endswith("/") or (not is_remote(pattern) and os.path.isdir(pattern)):
        return pattern.rstrip("/") + "/*"
    return None


def _known_format(path: str, input_format: str) -> bool:
    try:
        infer_format(path, input_format)
    except ConfigError:
        return False
    return True


def match_inputs(patterns: tuple[str, ...], input_format: str = "auto") -> list:
    """Every file the globs match, sorted by path; a glob that matches nothing is an error.

    A directory (or `dir/**`, recursively) stands for its files of a format
    tokenmill reads (any file, with an `--input-format`), so a README or a
    `_SUCCESS` marker beside the data is left out rather than failing the plan.
    """
    files = {}
    for pattern in patterns:
        directory = _directory_glob(pattern)
        matched = match(absolute(directory or pattern))
        metas = [m for m in matched if _known_format(m.path, input_format)] if directory else matched
        if not metas and directory and matched:
            raise ConfigError(f"--input {pattern!r} holds no file of a known format ({' '.join(KNOWN_SUFFIXES)}, maybe .gz/.zst); pass --input-format")
        if not metas:
            raise ConfigError(f"--input {pattern!r} matched no files")
        for meta in metas:
            files[meta.path] = meta
    return [files[p] for p in sorted(files)]


def fingerprint_file(meta, known: Mapping[str, dict] | None = None) -> dict[str, Any]:
    """Size plus a content hash (local files) or the store's checksum and time (object stores).

    A local file listed in `known` with the same size and modification time
    keeps the sha256 recorded there rather than being read again.
    """
    entry: dict[str, Any] = {"path": meta.path, "size": meta.size_in_bytes}
    if is_remote(meta.path):
        entry["checksum"] = checksum(meta.path)
        entry["last_updated"] = meta.last_updated_in_seconds
        return entry
    mtime_ns = os.stat(meta.path).st_mtime_ns
    seen = (known or {}).get(meta.path)
    if seen and seen["size"] == meta.size_in_bytes and seen["mtime_ns"] == mtime_ns:
        entry["sha256"] = seen["sha256"]
        return entry
    digest = hashlib.sha256()
    with open(meta.path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    entry["sha256"] = digest.hexdigest()
    entry["mtime_ns"] = mtime_ns
    return entry


def input_hashes_path(patterns: tuple[str, ...]) -> str:
    """Where the sha256s of the local files some `--input` globs matched are kept, on this machine, for the next plan of the same globs."""
    name = hashlib.sha256(json.dumps(sorted(absolute(p) for p in patterns)).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), "input-hashes", f"{name}.json")


def fingerprint_inputs(metas: list, patterns: tuple[str, ...], pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
    """Every input's `fingerprint_file`, several at a time (hashing and object-store requests leave the GIL).

    A local file whose size and modification time are those recorded by the
    last plan of the same globs keeps its recorded sha256, so planning a
    rebuild of a large local corpus reads only the files that changed. The
    record lives in tokenmill's cache directory, since it describes files
    of this machine, whatever the output.
    """
    path = input_hashes_path(patterns)
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    entries = list(pool.map(lambda meta: fingerprint_file(meta, known), metas))
    record = {e["path"]: {"size": e["size"], "mtime_ns": e.pop("mtime_ns"), "sha256": e["sha256"]} for e in entries if "mtime_ns" in e}
    if record:
        record = {**{p: known[p] for p in {e["path"] for e in entries} & known.keys()}, **record}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    return entries


STORE_TIMEOUT_SECONDS = 5


def check_stores(paths: list[tuple[str, str]], timeout: float = STORE_TIMEOUT_SECONDS) -> None:
    """Fail in seconds, in one line naming the flag, the path and the cause, if the object store of any (flag, path) cannot be used.

    Left to itself, Beam's GCS client retries a missing credential for about
    30 s and an unreachable endpoint for 120 s, then dies with a traceback
    from deep inside google.api_core.
    """
    gcs = [(flag, path) for flag, path in paths if path.startswith("gs://")]
    if not gcs:
        return
    flag, path = gcs[0]
    import_extra("google.cloud.storage", f"{flag} {path}")
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    endpoint = urllib.parse.urlsplit(emulator if emulator and "://" in emulator else f"http://{emulator}" if emulator else "https://storage.googleapis.com")
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot reach the object store at {endpoint.hostname}:{port} ({e.strerror or type(e).__name__}); check the network") from None
    if emulator:
        return
    import google.auth
    import google.auth.exceptions

    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        raise ConfigError(f"{flag} {path}: no Google Cloud credentials found; run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from None


def _cause(e: BaseException) -> str:
    """The first line of what went wrong, looking inside Beam's wrapper of per-path errors."""
    while isinstance(getattr(e, "exception_details", None), dict) and e.exception_details:
        e = next(iter(e.exception_details.values()))
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


@contextlib.contextmanager
def store_errors(flag: str, path: str):
    """An object store's refusal (no such bucket, no permission) as a one-line `ConfigError` naming the flag and the path."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as e:
        if not is_remote(path):
            raise
        raise ConfigError(f"{flag} {path}: {_cause(e)}") from e


def resolve_vocab(config: BuildConfig, tokenizer: TokenizerFiles) -> Vocab:
    """Every special id, from the tokenizer, its role files, the --X-token flags, or appended (SPEC §1)."""
    objective_cls = OBJECTIVES[config.objective]
    needed = objective_cls.sentinels_needed(config.objective_options)
    if config.extra_ids is not None and config.extra_ids < needed:
        raise ConfigError(f"--extra-ids {config.extra_ids} is too few: {config.objective} with these options needs {needed}; pass --extra-ids {needed}")
    extra_ids = config.extra_ids if config.extra_ids is not None else max(DEFAULT_EXTRA_IDS, needed)
    named = {**tokenizer.named_roles(), **{role: (token, f"--{role}-token") for role, token in config.special_tokens.items()}}
    try:
        return Vocab.from_tokenizer(tokenizer.load(), extra_ids, named)
    except TokenizerError as e:
        raise ConfigError(f"--tokenizer {config.tokenizer}: {e}") from None


def read_tokenizer(path: str) -> TokenizerFiles:
    """The `--tokenizer` files, kind told from the content; a one-line `ConfigError` for anything else."""
    local = not is_remote(path)
    try:
        with store_errors("--tokenizer", path):
            return read_tokenizer_files(
                absolute(path),
                read_bytes,
                exists,
                lambda p: os.path.isdir(p) if local else exists(join(p, "tokenizer.json")),
            )
    except TokenizerError as e:
        raise ConfigError(f"--tokenizer {path} {e}") from None
    except (OSError, IOError) as e:
        raise ConfigError(f"--tokenizer {path!r} cannot be read: {e}") from e


def write_tokenizer_copy(plan: "BuildPlan") -> None:
    """The tokenizer's files into the version's `tokenizer/`, where the manifest, readers, `show` and `report` find them."""
    for entry, data in zip(plan.tokenizer.manifest_entry()["files"], plan.tokenizer.files.values()):
        write_bytes(join(plan.version_dir, entry["path"]), data)


def plan_build(config: BuildConfig) -> BuildPlan:
    """Resolve everything the pipeline needs; raise `ConfigError` for anything that cannot work."""
    config.check()
    if "array_record" in config.formats:
        import_extra("array_record.python.array_record_module", "--formats array_record")
    check_stores([("--output", config.output), ("--tokenizer", config.tokenizer or ""), *(("--input", p) for p in config.inputs)])
    if not config.inputs:
        config = dataclasses.replace(config, inputs=(sample_corpus_path(),), input_format="jsonl")
    if not config.tokenizer:
        config = dataclasses.replace(config, tokenizer=sample_tokenizer_path())
    tokenizer = read_tokenizer(config.tokenizer)
    vocab = resolve_vocab(config, tokenizer)
    objective = OBJECTIVES[config.objective].from_options(config.objective_options, vocab)
    if objective.needs_word_starts and objective.masking == "none" and tokenizer.load().word_starts_need_encoding:
        raise ConfigError("--whole-word-mask with --masking none needs a SentencePiece model: a tokenizer.json's words come from its pre-tokenizer, which the shards do not record; use --masking static")

    with store_errors("--input", ", ".join(config.inputs)):
        metas = match_inputs(config.inputs, config.input_format)
    for meta in metas:
        infer_format(meta.path, config.input_format)  # a file of unknown format fails here, not on a worker
    with ThreadPoolExecutor(PLAN_THREADS) as pool:
        inputs = fingerprint_inputs(metas, config.inputs, pool)

    tokenizer_sha = tokenizer.fingerprint()
    code = code_version()
    input_bytes = sum(f["size"] for f in inputs)
    num_buckets = config.buckets_for(input_bytes)
    num_shards = config.shard_counts(input_bytes)
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "inputs": inputs,
                "tokenizer": tokenizer_sha,
                "config": config.fingerprint_fields(),
                "objective": objective.params(),
                "num_buckets": num_buckets,
                "num_shards": num_shards,
                "code": code["source_sha256"],
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()
    started_at = utc_now()
    output = absolute(config.output)
    with store_errors("--output", output):
        version = config.version or _unused_version_name(output, f"{started_at.replace('-', '').replace(':', '')}-{fingerprint[:8]}")
    plan = BuildPlan(
        config=config,
        objective=objective,
        vocab=vocab,
        tokenizer=tokenizer,
        code=code,
        input_spec=InputSpec(config.text_field, config.id_field or None, config.max_document_bytes),
        inputs=inputs,
        num_buckets=num_buckets,
        num_shards=num_shards,
        buckets_per_group=members_per_group(num_buckets),
        shards_per_group={split: members_per_group(count) for split, count in num_shards.items()},
        output=output,
        version=version,
        fingerprint=fingerprint,
        started_at=started_at,
    )
    with store_errors("--output", output):
        if exists(join(plan.version_dir, MANIFEST)):
            raise ConfigError(f"version {version!r} already exists in {output}; pass another --version")
        delete_tree(plan.version_dir)  # an incomplete leftover of the same name (a failed run of this --version)
    return plan


def _unused_version_name(output: str, name: str) -> str:
    """`name`, or `name.2`, `name.3`, ... if builds of the same config started within one second."""
    candidate, n = name, 1
    while has_files(join(output, VERSIONS, candidate)):
        n += 1
        candidate = f"{name}.{n}"
    return candidate


def _every_shard(split_and_count: tuple[str, int]):
    split, count = split_and_count
    return [(split, shard) for shard in range(count)]


def _sentence_splitter(plan: BuildPlan):
    if not plan.objective.uses_sentences:
        return None
    from transforms.sentences import split_sentences

    return split_sentences


class BuildCorpus(beam.PTransform):
    """The whole build as one composite transform: root in, the published manifest out.

    Every written file is re-read and checked before Publish writes the
    manifest; with a `retention` (a rebuild) Publish then prunes old versions.
    """

    def __init__(self, plan: BuildPlan, progress_dir: str | None = None, retention: Retention | None = None):
        super().__init__()
        self._plan = plan
        self._progress_dir = progress_dir
        self._retention = retention

    def expand(self, pbegin):
        plan, config = self._plan, self._plan.config
        read = (
            pbegin
            | "Files" >> beam.Create([(f["path"], f["size"]) for f in plan.inputs], reshuffle=False)
            | "PlanRanges" >> beam.ParDo(PlanRanges(config.input_format, config.read_range_mb << 20))
            | "SpreadRanges" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(ReadDocuments(plan.input_spec, progress_dir=self._progress_dir, spread_bytes=config.read_range_mb << 20)).with_outputs("dead", COUNTERS, SPREAD, main="docs")
        )
        whole_words = plan.objective.needs_word_starts and plan.tokenizer.load().word_starts_need_encoding
        tokenize = TokenizeDocuments(_sentence_splitter(plan), config.seed, plan.num_buckets, plan.buckets_per_group, plan.temporary_dir, self._progress_dir, whole_words)
        # Impulse and a Map: a Create would hold the model's bytes twice, uncompressed.
        model = beam.pvalue.AsSingleton(pbegin | "Impulse" >> beam.Impulse() | "TokenizerModel" >> beam.Map(lambda _, model=(plan.tokenizer.kind, plan.tokenizer.data): model))
        # Two tokenize steps rather than one after a Flatten: a runner may materialise a Flatten's inputs, which would move all the text.
        fused = read.docs | "Tokenize" >> beam.ParDo(tokenize, model).with_outputs("dead", COUNTERS, main="buckets")
        spread = read[SPREAD] | "SpreadBatches" >> beam.Reshuffle() | "TokenizeSpread" >> beam.ParDo(tokenize, model).with_outputs("dead", COUNTERS, main="buckets")
        made = (
            (fused.buckets, spread.buckets)
            | "AllBuckets" >> beam.Flatten()
            | "GroupBuckets" >> beam.GroupByKey()
            | "Objective" >> beam.ParDo(
                MakeExamples(plan.objective, config.seed, config.validation_fraction, plan.num_buckets, plan.buckets_per_group, plan.num_shards, plan.shards_per_group, plan.temporary_dir)
            ).with_outputs(COUNTERS, main="examples")
        )
        shard_args = (plan.objective.schema, plan.version_dir, config.formats, config.compression, plan.num_shards, plan.vocab.pad, plan.shards_per_group)
        written = made.examples | "GroupShards" >> beam.GroupByKey() | "WriteShards" >> beam.ParDo(WriteShard(*shard_args))
        empty = (
            pbegin
            | "Splits" >> beam.Create(sorted(plan.num_shards.items()), reshuffle=False)
            | "EveryShard" >> beam.FlatMap(_every_shard)
            | "WriteEmptyShards" >> beam.ParDo(WriteEmptyShards(*shard_args), beam.pvalue.AsList(written))
        )
        shards = (
            (written, empty)
            | "AllShards" >> beam.Flatten()
            | "VerifyShards" >> beam.ParDo(VerifyWritten(plan.version_dir, config.compression))
        )
        errors = (
            (read.dead, fused.dead, spread.dead)
            | "DeadLetters" >> beam.Flatten()
            | "KeyByWindow" >> beam.Map(key_by_window)
            | "GroupWindows" >> beam.GroupByKey()
            | "SortWindows" >> beam.ParDo(SortDeadLetters(plan.temporary_dir))
            | "GroupReasons" >> beam.GroupByKey()
            | "WriteErrors" >> beam.ParDo(WriteDeadLetters(plan.version_dir))
            | "VerifyErrors" >> beam.ParDo(VerifyWritten(plan.version_dir, config.compression))
        )
        counters = (
            (read[COUNTERS], fused[COUNTERS], spread[COUNTERS], made[COUNTERS])
            | "AllCounters" >> beam.Flatten()
            | "SumCounters" >> beam.CombineGlobally(SumCounters())
        )
        return (
            pbegin
            | "Once" >> beam.Create([None])
            | "Publish" >> beam.ParDo(
                Publish(plan.output, plan.version, plan.static_manifest(), plan.objective, self._retention, config.max_drop_fraction),
                beam.pvalue.AsSingleton(counters),
                beam.pvalue.AsList(shards),
                beam.pvalue.AsList(errors),
            )
        )


def run_build(config: BuildConfig, beam_args=(), show_progress: bool = True, quiet: bool = True) -> tuple[dict[str, Any] | None, str]:
    """Plan, run and wait; return the manifest (None if the runner did not produce one here) and the version's location."""
    return run_plan(plan_build(config), beam_args, show_progress, quiet)


def run_plan(plan: BuildPlan, beam_args=(), show_progress: bool = True, quiet: bool = True, retention: Retention | None = None) -> tuple[dict[str, Any] | None, str]:
    """Run a planned build and wait; as `run_build`."""
    from runners.local import run

    write_tokenizer_copy(plan)
    try:
        run(lambda p, progress_dir: p | BuildCorpus(plan, progress_dir, retention), beam_args, plan.input_bytes, show_progress, quiet)
    except Exception as e:
        refused = refusal_line(e)
        if refused is None:
            raise
        delete_tree(join(plan.version_dir, COPY_DIR))
        raise NotPublishable(refused) from None
    manifest_path = join(plan.version_dir, MANIFEST)
    if not exists(manifest_path):
        return None, plan.version_dir
    return json.loads(read_bytes(manifest_path)), plan.version_dir
