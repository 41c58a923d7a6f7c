"""The build configuration, checked before any pipeline starts."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from transforms.objectives import OBJECTIVES
from transforms.objectives.base import require
from transforms.publish_guard import DEFAULT_MAX_DROP_FRACTION
from transforms.read import READ_FORMATS
from transforms.write import DEFAULT_FORMATS, FORMATS, TFRECORD_COMPRESSIONS

DEFAULT_OUTPUT = "tokenmill-output"
BUCKET_BYTES = 4 << 20
SHARD_INPUT_BYTES = 256 << 20  # input per shard at scale: files of 0.1-0.5 GB per format
SMALL_SHARD_INPUT_BYTES = 16 << 20  # the least input a shard gets while a corpus is split into MIN_SHARDS
MIN_SHARDS = 16
MAX_SHARDS = 99999  # what a shard's name has room for
MIN_SHUFFLE_GROUPS = 256  # shuffle keys that keep many workers busy


def members_per_group(count: int) -> int:
    """How many consecutive buckets (or shards) share one shuffle key, so that the elements crossing a shuffle stay large.

    A worker sends one element per key among what it holds (32 MiB), so
    with a key per bucket the elements shrink to a document each past a
    few hundred buckets. Up to 256 buckets (about 1 GiB of input) each is
    its own key; beyond, about sqrt(count) keys, never fewer than 256: at
    1 TB, 489 groups of 488 buckets, so an element carries 1/489 of a hold
    rather than 1/238,419. The receiving step sorts a group into its
    buckets (or shards) through a hold of its own; the output does not
    depend on the grouping.
    """
    groups = min(count, max(MIN_SHUFFLE_GROUPS, math.isqrt(max(0, count - 1)) + 1))
    return -(-count // max(1, groups))


def shards_for(input_bytes: int) -> int:
    """Shards for this much input: one per 256 MiB, but at least 16 while each still gets 16 MiB.

    A file per 256 MiB of input text holds 0.1-0.5 GB of examples per
    format (by objective): large enough for object stores and readers to
    stream at full speed, small enough that a trainer's hosts each get
    files of their own. Below 4 GiB, 16 shards (each at least 16 MiB of
    input) keep 16 writers busy and give 16 readers a file each; below that,
    a corpus gets a shard per 16 MiB, so a small one is not cut into many
    near-empty files (the 2.3 MB sample corpus is one shard).
    """
    return min(MAX_SHARDS, max(1, min(MIN_SHARDS, math.ceil(input_bytes / SMALL_SHARD_INPUT_BYTES)), math.ceil(input_bytes / SHARD_INPUT_BYTES)))


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything that decides a build's output (apart from the input bytes and the tokenizer)."""

    objective: str = "clm"
    inputs: tuple[str, ...] = ()
    input_format: str = "auto"
    text_field: str = "text"
    id_field: str | None = "id"
    tokenizer: str | None = None
    output: str = DEFAULT_OUTPUT
    formats: tuple[str, ...] = DEFAULT_FORMATS
    num_shards: int | None = None
    num_validation_shards: int | None = None
    seed: int = 0
    validation_fraction: float = 0.01
    compression: str = "none"
    num_buckets: int | None = None
    max_document_bytes: int = 8 << 20
    read_range_mb: int = 4
    extra_ids: int | None = None
    special_tokens: Mapping[str, str] = dataclasses.field(default_factory=dict)  # role -> token text, from --pad-token ...
    version: str | None = None
    max_drop_fraction: float = DEFAULT_MAX_DROP_FRACTION
    objective_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def check(self) -> None:
        """Raise `ConfigError` naming the flag to change, for any value that cannot work."""
        require(self.objective in OBJECTIVES, f"--objective must be one of {', '.join(sorted(OBJECTIVES))}, got {self.objective!r}")
        require(self.input_format in ("auto",) + READ_FORMATS, f"--input-format must be auto or one of {', '.join(READ_FORMATS)}, got {self.input_format!r}")
        require(bool(self.text_field), "--text-field must not be empty")
        require(bool(self.formats) and all(f in FORMATS for f in self.formats), f"--formats must be a comma-separated subset of {','.join(FORMATS)}, got {','.join(self.formats) or '(empty)'}")
        require(len(set(self.formats)) == len(self.formats), f"--formats lists a format twice: {','.join(self.formats)}")
        require(self.num_shards is None or 1 <= self.num_shards <= MAX_SHARDS, f"--num-shards must be between 1 and {MAX_SHARDS}, got {self.num_shards}")
        require(self.num_validation_shards is None or 1 <= self.num_validation_shards <= MAX_SHARDS, f"--num-validation-shards must be between 1 and {MAX_SHARDS}, got {self.num_validation_shards}")
        require(0.0 <= self.validation_fraction < 1.0, f"--validation-fraction must be in [0, 1), got {self.validation_fraction}")
        require(self.compression in TFRECORD_COMPRESSIONS, f"--compression must be one of {', '.join(TFRECORD_COMPRESSIONS)}, got {self.compression!r}")
        require(self.num_buckets is None or self.num_buckets >= 1, f"--num-buckets must be at least 1, got {self.num_buckets}")
        require(self.max_document_bytes >= 1, f"--max-document-bytes must be positive, got {self.max_document_bytes}")
        require(self.read_range_mb >= 1, f"--read-range-mb must be positive, got {self.read_range_mb}")
        require(self.extra_ids is None or self.extra_ids >= 0, f"--extra-ids must be >= 0, got {self.extra_ids}")
        require(0.0 <= self.max_drop_fraction <= 1.0, f"--max-drop-fraction must be in [0, 1], got {self.max_drop_fraction}")
        require(0 <= self.seed < 2**63, f"--seed must be a non-negative integer below 2**63, got {self.seed}")
        require(
            self.version is None or (self.version and "/" not in self.version and not self.version.startswith(".")),
            f"--version must be a plain name (no '/', not starting with '.'), got {self.version!r}",
        )

    def shard_counts(self, input_bytes: int) -> dict[str, int]:
        """Shards per split: the flags, or else from the input size (`shards_for`; validation's from its share of the input)."""
        counts = {"train": self.num_shards or shards_for(input_bytes)}
        if self.validation_fraction > 0:
            if self.num_validation_shards:
                counts["validation"] = self.num_validation_shards
            elif self.num_shards:
                counts["validation"] = max(1, math.ceil(self.num_shards * self.validation_fraction))
            else:
                counts["validation"] = shards_for(int(input_bytes * self.validation_fraction))
        return counts

    def buckets_for(self, input_bytes: int) -> int:
        """Buckets of about 4 MiB of input: enough of them to share evenly among workers, each small in memory."""
        return self.num_buckets or max(1, math.ceil(input_bytes / BUCKET_BYTES))

    def fingerprint_fields(self) -> dict[str, Any]:
        """The general settings that shape the output.

        Left out: where it goes, the version name, how the input is split for
        reading (it cannot change the output), when to refuse to publish, and what is fingerprinted by
        content or resolved elsewhere (inputs, tokenizer, the objective's own
        parameters, the bucket count).
        """
        fields = dataclasses.asdict(self)
        for name in ("inputs", "output", "version", "tokenizer", "objective_options", "num_buckets", "read_range_mb", "max_drop_fraction"):
            fields.pop(name)
        fields["formats"] = list(self.formats)
        if not fields["special_tokens"]:
            fields.pop("special_tokens")
        return fields
