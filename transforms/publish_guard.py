"""The publish guard: a version whose train split is empty, or that dropped too much of its input, is never published.

A nightly rebuild after an upstream schema change (the text moved to another
field) would otherwise publish an empty corpus and move `LATEST` to it,
handing every trainer nothing. The guard runs in `Publish`, before the
manifest is written; a refused build deletes its shards, keeps its dead
letters (`errors/`, for a look) and fails with one line naming the top drop
reason and the flag that fixes it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

DEFAULT_MAX_DROP_FRACTION = 0.5

# What to do about each dead-letter reason (transforms.read, transforms.tokenize).
FIXES = {
    "text_not_string": "pass --text-field naming a string field",
    "malformed_json": "check that the files are JSON lines, or pass --input-format",
    "not_a_json_object": "each line must be a JSON object; check the files, or pass --input-format",
    "invalid_utf8": "re-encode the files as UTF-8",
    "invalid_id": "pass --id-field naming a string or integer field, or --id-field '' to key documents by their text",
    "empty_document": "check --text-field: it holds only whitespace",
    "document_too_large": "raise --max-document-bytes",
    "truncated_file": "the files end early: copy them again",
    "corrupt_record": "the files are damaged: copy them again",
    "malformed_example": "the records are not tf.train.Example: pass --input-format",
    "unreadable_file": "check the files are what their names say, or pass --input-format",
    "no_tokens": "the tokenizer gives their text no pieces: check --tokenizer",
}
MISSING_TEXT = "missing_text_field"


class NotPublishable(Exception):
    """A build the guard refused; the message is the one line to show."""


def refusal(manifest: Mapping[str, Any], max_drop_fraction: float, first_dead_letter: Callable[[str], dict | None]) -> str | None:
    """Why this assembled manifest must not be published, in one line; None when it may be.

    `first_dead_letter(reason)` gives the first line of `errors/<reason>.jsonl`
    (parsed), to name the fields a record without the text field has.
    """
    counters = manifest["counters"]
    read, dropped = counters["records_read"], counters["documents_dropped"]
    if read == 0:
        return "the inputs hold no records: check --input"
    share = counters["documents_dropped_total"] / read
    empty = manifest["totals"].get("train", {}).get("examples", 0) == 0
    if share <= max_drop_fraction and not empty:
        return None
    if dropped and (share > max_drop_fraction or counters["documents_used"] == 0):
        reason, count = max(dropped.items(), key=lambda item: (item[1], item[0]))
        what = f"{count:,} of {read:,} records dropped as {reason}"
        limit = f" (over --max-drop-fraction {max_drop_fraction:g})" if share > max_drop_fraction else ""
        return f"{what}{limit}: {_fix(reason, count == read, manifest, first_dead_letter)}"
    objective = manifest["objective"]["name"]
    return f"train would be empty: {counters['documents_used']:,} documents made no {objective} example; check that they are long enough for the objective's lengths"


def _fix(reason: str, every_record: bool, manifest: Mapping[str, Any], first_dead_letter: Callable[[str], dict | None]) -> str:
    if reason != MISSING_TEXT:
        return FIXES.get(reason, f"see errors/{reason}.jsonl")
    field = manifest["config"]["text_field"]
    head = f"no record has field {field!r}" if every_record else f"those records have no field {field!r}"
    fields = fields_seen(first_dead_letter(MISSING_TEXT) or {}, manifest["config"]["input_format"])
    if not fields:
        return f"{head}; pass --text-field naming the field that holds the text"
    names = ", ".join(fields)
    candidates = {name: value for name, value in fields.items() if name != manifest["config"]["id_field"]} or fields
    return f"{head}; fields seen: {names} — pass --text-field {_likely_text_field(candidates)}"


def fields_seen(dead_letter: Mapping[str, Any], input_format: str) -> dict[str, Any]:
    """The fields of a dead-lettered record, name -> a sample value (None when unknown), in the record's order."""
    from transforms.read import example_features, infer_format

    source = dead_letter.get("source", "")
    fmt = infer_format(source, input_format)[0] if source else "jsonl"
    if fmt == "parquet":
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems

        import pyarrow as pa

        with FileSystems.open(source) as f:
            schema = pq.read_schema(f)
        return {field.name: "" if pa.types.is_string(field.type) or pa.types.is_large_string(field.type) else None for field in schema}
    if fmt == "tfrecord" and "record_base64" in dead_letter:
        import base64

        features = example_features(base64.b64decode(dead_letter["record_base64"]), None)
        return {name: values[0] if kind == "bytes" and len(values) == 1 else None for name, (kind, values) in features.items()}
    try:
        record = json.loads(dead_letter.get("record", ""))
    except ValueError:
        return {}
    return dict(record) if isinstance(record, dict) else {}


def _likely_text_field(fields: Mapping[str, Any]) -> str:
    """The field with the longest string (or bytes) value, the first of equals: what holds the text, most likely; else the first."""
    sized = [(len(v), -i, name) for i, (name, v) in enumerate(fields.items()) if isinstance(v, (str, bytes))]
    return max(sized)[2] if sized else next(iter(fields))


_WORKER_TRACEBACK = re.compile(rf"{NotPublishable.__name__}: ([^\n]+)")
_STEP = re.compile(r" \[while running '[^']*'\]$")


def refusal_line(error: BaseException) -> str | None:
    """The guard's line, from the error a runner raised for the failed job: the exception itself, or a worker's traceback text."""
    text = str(error.args[0]) if isinstance(error, NotPublishable) and error.args else None
    if text is None:
        found = _WORKER_TRACEBACK.search(str(error))
        text = found.group(1) if found else None
    return _STEP.sub("", text) if text else None
