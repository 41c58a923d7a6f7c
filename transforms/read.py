"""Read input files into documents; anything unusable becomes a dead letter.

Input formats (SPEC §1): JSON lines (`jsonl`), Parquet, TFRecord files of
`tf.train.Example` with a bytes text feature (`tfrecord`), and plain text in
BERT's format (`text`: one sentence a line, a blank line between documents),
optionally `.gz` or `.zst` compressed. Files are read through Beam's
FileSystems, so `gs://` and every other registered scheme work.

A *record* is one JSON line, one Parquet row, one TFRecord record or one
text document. Every
record read ends as exactly one of: a `Document`, or a `DeadLetter` with a
reason. A truncated compressed file adds one dead letter for the lost tail,
and a file that cannot be opened or decoded at all adds one for the file; so
records read = documents + dead letters, always.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import json
import zlib
from typing import Any, Callable, Iterator

import apache_beam as beam

from transforms.codec import BrokenFraming, read_varint, scan_frames
from transforms.counters import emit_counters
from transforms.errors import ConfigError
from transforms.progress import ProgressFile
from transforms.storage import open_raw

READ_FORMATS = ("jsonl", "text", "parquet", "tfrecord")
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
_FORMAT_SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "text",
    ".text": "text",
    ".parquet": "parquet",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}

# Dead-letter reasons.
INVALID_UTF8 = "invalid_utf8"
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_a_json_object"
MISSING_TEXT = "missing_text_field"
TEXT_NOT_STRING = "text_not_string"
INVALID_ID = "invalid_id"
EMPTY_DOCUMENT = "empty_document"
TOO_LARGE = "document_too_large"
TRUNCATED_FILE = "truncated_file"
CORRUPT_RECORD = "corrupt_record"
MALFORMED_EXAMPLE = "malformed_example"
UNREADABLE_FILE = "unreadable_file"
NO_TOKENS = "no_tokens"

_BLOCK = 1 << 20
_RANGE_SLACK = 64 << 10  # read past a range's end: the rest of its last line, in the same request


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """How to turn records into documents."""

    text_field: str = "text"
    id_field: str | None = "id"
    max_document_bytes: int = 8 << 20


@dataclasses.dataclass(frozen=True)
class ReadRange:
    """A unit of reading work: bytes [start, end) of an uncompressed JSONL file,
    row groups [start, end) of a Parquet file, or a whole file (end None)."""

    path: str
    format: str
    compression: str | None
    start: int = 0
    end: int | None = None
    size: int = 0  # bytes this range stands for, for progress


@dataclasses.dataclass
class Document:
    key: str
    text: str
    sentences: list[str] | None = None
    source: str = ""
    offset: int = 0


@dataclasses.dataclass
class TextBatch:
    """Documents on their way to the tokenizer, as one element.

    Not a bare list: Beam estimates the size of sampled list elements item by
    item, which pickles every document of the batch.
    """

    documents: list[Document]


@dataclasses.dataclass
class DeadLetter:
    source: str
    offset: int
    reason: str
    raw: bytes
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """One line of `errors/*.jsonl`: the raw record, as text when it is valid UTF-8."""
        out: dict[str, Any] = {"source": self.source, "offset": self.offset, "reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        try:
            out["record"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            out["record_base64"] = base64.b64encode(self.raw).decode("ascii")
        return out


def infer_format(path: str, fmt: str = "auto") -> tuple[str, str | None]:
    """(format, compression) of a path; `fmt` overrides the format, never the compression."""
    name = path.rsplit("/", 1)[-1].lower()
    compression = None
    for suffix, kind in COMPRESSIONS.items():
        if name.endswith(suffix):
            compression, name = kind, name[: -len(suffix)]
    if fmt != "auto":
        return fmt, compression
    for suffix, kind in _FORMAT_SUFFIXES.items():
        if name.endswith(suffix):
            return kind, compression
    raise ConfigError(
        f"cannot tell the format of {path!r} from its name; pass --input-format {'|'.join(READ_FORMATS)}"
    )


def plan_ranges(path: str, size: int, fmt: str, compression: str | None, range_bytes: int, parquet_row_groups: int | None = None) -> list[ReadRange]:
    """Split one file into ranges that workers read in parallel.

    Uncompressed JSONL splits by bytes (a line belongs to the range holding its
    first byte); Parquet by row groups; everything else is read whole.
    """
    if fmt == "jsonl" and compression is None and size > range_bytes:
        step = -(-size // -(-size // range_bytes))  # equal ranges of at most range_bytes
        return [ReadRange(path, fmt, None, s, min(s + step, size), min(step, size - s)) for s in range(0, size, step)]
    if fmt == "parquet" and parquet_row_groups and parquet_row_groups > 1:
        return [ReadRange(path, fmt, compression, g, g + 1, size // parquet_row_groups) for g in range(parquet_row_groups)]
    return [ReadRange(path, fmt, compression, size=size)]


def parquet_row_groups(path: str) -> int | None:
    """How many row groups a Parquet file has (from its footer); None if it cannot be read (the reader dead-letters it)."""
    import pyarrow.parquet as pq

    try:
        with open_raw(path) as f:
            return pq.ParquetFile(f).metadata.num_row_groups
    except Exception:  # noqa: BLE001 — the reader dead-letters an unreadable file
        return None


class PlanRanges(beam.DoFn):
    """(path, size) of an input file in; the `ReadRange`s it is read in out.

    Planning inside the pipeline keeps the job graph the size of the file
    list, whatever the bytes: 1 TB of JSONL in 4 MiB ranges is 262k ranges,
    far past what a job graph may hold. A Parquet footer is read here, on a
    worker, not by the launcher.
    """

    def __init__(self, input_format: str, range_bytes: int):
        self._input_format = input_format
        self._range_bytes = range_bytes

    def process(self, file: tuple[str, int]) -> Iterator[ReadRange]:
        path, size = file
        fmt, compression = infer_format(path, self._input_format)
        groups = parquet_row_groups(path) if fmt == "parquet" else None
        yield from plan_ranges(path, size, fmt, compression, self._range_bytes, groups)


class _Truncated(Exception):
    """The compressed stream ended before its end marker."""


def _decompressed_blocks(raw: Any, compression: str | None) -> Iterator[bytes]:
    """Blocks of decompressed bytes; raises `_Truncated` if the stream stops early."""
    if compression is None:
        while block := raw.read(_BLOCK):
            yield block
        return
    if compression == "gzip":
        new = lambda: zlib.decompressobj(wbits=47)  # noqa: E731  gzip or zlib header, auto-detected
    else:
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        new = dctx.decompressobj
    decoder, pending = new(), False
    while block := raw.read(_BLOCK):
        while block:
            out = decoder.decompress(block)
            pending = True
            if out:
                yield out
            if decoder.eof:
                block, decoder, pending = decoder.unused_data, new(), False
            else:
                block = b""
    if pending:
        if compression == "gzip":
            tail = decoder.flush()
            if tail:
                yield tail
        raise _Truncated()


class _PartialRecord(Exception):
    """A truncated stream ended inside a record: its bytes so far, and where it began."""

    def __init__(self, offset: int, raw: bytes):
        super().__init__(offset)
        self.offset, self.raw = offset, raw


def _lines(blocks: Iterator[bytes], offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(offset, line without its newline) over decompressed blocks."""
    rest = b""
    try:
        for block in blocks:
            parts = (rest + block).split(b"\n")
            rest = parts.pop()
            for line in parts:
                yield offset, line
                offset += len(line) + 1
    except _Truncated:
        raise _PartialRecord(offset, rest) from None
    if rest:
        yield offset, rest


def iter_records(rng: ReadRange, open_file: Callable[[str], Any]) -> Iterator[tuple[int, bytes] | DeadLetter]:
    """Raw records of a JSONL or text range as (offset, bytes), or dead letters for damage.

    JSONL offsets are byte offsets in the decompressed file; text offsets are
    the line number where the document starts; TFRecord offsets are record
    numbers.
    """
    try:
        raw = open_file(rng.path)
    except Exception as e:  # noqa: BLE001 — a file we cannot open is dead-lettered, the run goes on
        yield DeadLetter(rng.path, rng.start, UNREADABLE_FILE, b"", f"{type(e).__name__}: {e}")
        return
    if rng.format == "jsonl":
        records = _jsonl_records(raw, rng)
    elif rng.format == "tfrecord":
        records = _tfrecord_records(raw, rng)
    else:
        records = _text_documents(raw, rng.compression)
    offset = rng.start
    try:
        with raw:
            for item in records:
                if isinstance(item, DeadLetter):
                    yield item
                else:
                    offset = item[0]
                    yield item
    except _PartialRecord as e:
        yield DeadLetter(rng.path, e.offset, TRUNCATED_FILE, e.raw, "the file ends inside this record")
    except BrokenFraming as e:
        yield DeadLetter(rng.path, offset, UNREADABLE_FILE, b"", str(e))
    except Exception as e:  # noqa: BLE001 — corrupt compressed data and the like
        yield DeadLetter(rng.path, offset, UNREADABLE_FILE, b"", f"after offset {offset}: {type(e).__name__}: {e}")


def _range_blocks(raw: Any, start: int, end: int) -> Iterator[bytes]:
    """Blocks of an uncompressed file from `start`: none past `end` but small ones, until the caller has the rest of its last line."""
    pos = start
    while block := raw.read(min(_BLOCK, end - pos) if pos < end else _RANGE_SLACK):
        pos += len(block)
        yield block


def _jsonl_records(raw: Any, rng: ReadRange) -> Iterator[tuple[int, bytes]]:
    start = rng.start
    if start > 0:
        raw.seek(start - 1)
        start += len(raw.readline()) - 1
    split = rng.end is not None and rng.compression is None
    blocks = _range_blocks(raw, start, rng.end) if split else _decompressed_blocks(raw, rng.compression)
    for offset, line in _lines(blocks, start):
        if rng.end is not None and offset >= rng.end:
            return
        if line.strip():
            yield offset, line


def _text_documents(raw: Any, compression: str | None) -> Iterator[tuple[int, bytes]]:
    """BERT format: runs of non-blank lines; offset = line number of the first line."""
    doc: list[bytes] = []
    first = number = 0
    try:
        for number, (_, line) in enumerate(_lines(_decompressed_blocks(raw, compression))):
            if line.strip():
                if not doc:
                    first = number
                doc.append(line)
            elif doc:
                yield first, b"\n".join(doc)
                doc = []
    except _PartialRecord as e:
        raise _PartialRecord(first if doc else number + 1, b"\n".join(doc + [e.raw])) from None
    if doc:
        yield first, b"\n".join(doc)


def _tfrecord_records(raw: Any, rng: ReadRange) -> Iterator[tuple[int, bytes] | DeadLetter]:
    """TFRecord framing (length, masked CRC32C of it, data, masked CRC32C of the data).

    A record whose data fails its CRC is dead-lettered and reading goes on; a
    length that fails its CRC ends the file (the framing is lost).
    """
    buffer, index = bytearray(), 0
    try:
        for block in _decompressed_blocks(raw, rng.compression):
            buffer += block
            pos = 0
            for pos, record, intact in scan_frames(buffer):
                if intact:
                    yield index, bytes(record)
                else:
                    yield DeadLetter(rng.path, index, CORRUPT_RECORD, bytes(record), "the data fails its CRC")
                index += 1
            del buffer[:pos]
    except BrokenFraming as e:
        raise BrokenFraming(f"record {index}: the length fails its CRC") from e
    except _Truncated:
        raise _PartialRecord(index, bytes(buffer)) from None
    if buffer:
        raise _PartialRecord(index, bytes(buffer))


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a serialized message; values of length-delimited fields are bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            size, pos = read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
            if pos > end:
                raise ValueError("a field runs past the end of the message")
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire} is not in tf.train.Example")
        yield field, wire, value


def example_features(record: bytes, names: set[str]) -> dict[str, tuple[str, list]]:
    """The named features of a serialized `tf.train.Example`: name -> (kind, values).

    kind is "bytes" (values are bytes), "int64" (ints) or "float" (left undecoded).
    """
    out = {}
    for field, _, features in _protobuf_fields(record):
        if field != 1:
            continue
        for entry_field, _, entry in _protobuf_fields(features):
            if entry_field != 1:
                continue
            name, feature = None, b""
            for f, _, v in _protobuf_fields(entry):
                if f == 1:
                    name = v.decode("utf-8")
                elif f == 2:
                    feature = v
            if name not in names:
                continue
            kind, values = "bytes", []
            for f, _, v in _protobuf_fields(feature):
                kind = {1: "bytes", 2: "float", 3: "int64"}.get(f, "unknown")
                if kind == "bytes":
                    values = [x for g, _, x in _protobuf_fields(v) if g == 1]
                elif kind == "int64":
                    values = [_signed(x) for x in _packed_or_plain_varints(v)]
            out[name] = (kind, values)
    return out


def _packed_or_plain_varints(data: bytes) -> list[int]:
    values = []
    for field, wire, value in _protobuf_fields(data):
        if field != 1:
            continue
        if wire == 0:
            values.append(value)
        else:
            pos = 0
            while pos < len(value):
                v, pos = read_varint(value, pos)
                values.append(v)
    return values


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def parse_tfrecord(source: str, index: int, record: bytes, spec: InputSpec) -> Document | DeadLetter:
    names = {spec.text_field} | ({spec.id_field} if spec.id_field else set())
    try:
        features = example_features(record, names)
    except (ValueError, UnicodeDecodeError) as e:
        return DeadLetter(source, index, MALFORMED_EXAMPLE, record, str(e))
    if spec.text_field not in features:
        return DeadLetter(source, index, MISSING_TEXT, record, f"no {spec.text_field!r} feature")
    kind, values = features[spec.text_field]
    if kind != "bytes" or len(values) != 1:
        return DeadLetter(source, index, TEXT_NOT_STRING, record, f"{spec.text_field!r} is {kind} with {len(values)} values, not one bytes value")
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError as e:
        return DeadLetter(source, index, INVALID_UTF8, record, str(e))
    doc_id = None
    if spec.id_field in features:
        kind, values = features[spec.id_field]
        if len(values) != 1 or kind not in ("bytes", "int64"):
            return DeadLetter(source, index, INVALID_ID, record, f"id is {kind} with {len(values)} values")
        try:
            doc_id = values[0].decode("utf-8") if kind == "bytes" else values[0]
        except UnicodeDecodeError as e:
            return DeadLetter(source, index, INVALID_ID, record, str(e))
    bad = _checked_text(text, source, index, record, spec)
    return bad or Document(_key(doc_id, text), text, None, source, index)


def _key(doc_id: Any, text: str) -> str:
    return f"id:{doc_id}" if doc_id is not None else f"sha:{_content_key(text)}"


def _content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _checked_text(text: str, source: str, offset: int, raw: bytes, spec: InputSpec) -> DeadLetter | None:
    if text.isascii():  # the common case needs no encoding pass
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as e:
            return DeadLetter(source, offset, INVALID_UTF8, raw, f"lone surrogate: {e.reason}")
    if not text or text.isspace():
        return DeadLetter(source, offset, EMPTY_DOCUMENT, raw)
    if size > spec.max_document_bytes:
        return DeadLetter(source, offset, TOO_LARGE, raw, f"{size} bytes > --max-document-bytes {spec.max_document_bytes}")
    return None


def _checked_id(value: Any, source: str, offset: int, raw: bytes) -> tuple[Any, DeadLetter | None]:
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value, None
    return None, DeadLetter(source, offset, INVALID_ID, raw, f"id is a {type(value).__name__}")


def parse_jsonl(source: str, offset: int, line: bytes, spec: InputSpec) -> Document | DeadLetter:
    try:
        obj = json.loads(line.decode("utf-8"))  # decoding first spares json its encoding detection
    except UnicodeDecodeError as e:
        return DeadLetter(source, offset, INVALID_UTF8, line, str(e))
    except ValueError as e:
        return DeadLetter(source, offset, MALFORMED_JSON, line, str(e))
    if not isinstance(obj, dict):
        return DeadLetter(source, offset, NOT_AN_OBJECT, line, f"a JSON {type(obj).__name__}")
    if spec.text_field not in obj or obj[spec.text_field] is None:
        return DeadLetter(source, offset, MISSING_TEXT, line, f"no {spec.text_field!r} field")
    text = obj[spec.text_field]
    if not isinstance(text, str):
        return DeadLetter(source, offset, TEXT_NOT_STRING, line, f"{spec.text_field!r} is a {type(text).__name__}")
    doc_id, bad = _checked_id(obj.get(spec.id_field) if spec.id_field else None, source, offset, line)
    bad = bad or _checked_text(text, source, offset, line, spec)
    return bad or Document(_key(doc_id, text), text, None, source, offset)


def parse_text(source: str, line_number: int, raw: bytes, spec: InputSpec) -> Document | DeadLetter:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return DeadLetter(source, line_number, INVALID_UTF8, raw, str(e))
    bad = _checked_text(text, source, line_number, raw, spec)
    if bad:
        return bad
    sentences = [s.strip() for s in text.split("\n")]
    return Document(_key(None, text), text, [s for s in sentences if s], source, line_number)


def iter_parquet(rng: ReadRange, open_file: Callable[[str], Any], spec: InputSpec) -> Iterator[Document | DeadLetter]:
    """Rows of the range's row groups; offsets are row numbers in the file."""
    import pyarrow.parquet as pq

    try:
        handle = open_file(rng.path)
        pf = pq.ParquetFile(handle)
        groups = range(rng.start, rng.end if rng.end is not None else pf.num_row_groups)
        first_row = sum(pf.metadata.row_group(g).num_rows for g in range(groups.start))
        columns = [c for c in (spec.text_field, spec.id_field) if c and c in pf.schema_arrow.names]
    except Exception as e:  # noqa: BLE001
        yield DeadLetter(rng.path, rng.start, UNREADABLE_FILE, b"", f"{type(e).__name__}: {e}")
        return
    for g in groups:
        try:
            table = pf.read_row_group(g, columns=columns)
        except Exception as e:  # noqa: BLE001
            yield DeadLetter(rng.path, first_row, UNREADABLE_FILE, b"", f"row group {g}: {type(e).__name__}: {e}")
            first_row += pf.metadata.row_group(g).num_rows
            continue
        n = table.num_rows
        texts = table.column(spec.text_field).to_pylist() if spec.text_field in columns else [None] * n
        ids = table.column(spec.id_field).to_pylist() if spec.id_field in columns else [None] * n
        for i, (text, doc_id) in enumerate(zip(texts, ids)):
            yield _parquet_row(rng.path, first_row + i, text, doc_id, spec)
        first_row += n


def _parquet_row(source: str, row: int, stored: Any, doc_id: Any, spec: InputSpec) -> Document | DeadLetter:
    def raw() -> bytes:
        """The row as a JSON record, made only for a row that is dead-lettered."""
        return json.dumps({"text": stored if isinstance(stored, str) else repr(stored), "id": repr(doc_id) if doc_id is not None else None}).encode()

    text = stored
    if isinstance(stored, bytes):
        try:
            text = stored.decode("utf-8")
        except UnicodeDecodeError as e:
            return DeadLetter(source, row, INVALID_UTF8, raw(), str(e))
    if text is None:
        return DeadLetter(source, row, MISSING_TEXT, raw(), f"no {spec.text_field!r} value")
    if not isinstance(text, str):
        return DeadLetter(source, row, TEXT_NOT_STRING, raw(), f"{spec.text_field!r} is a {type(text).__name__}")
    checked_id, bad = _checked_id(doc_id, source, row, b"")
    bad = bad or _checked_text(text, source, row, b"", spec)
    if bad:
        return dataclasses.replace(bad, raw=raw())
    return Document(_key(checked_id, text), text, None, source, row)


def read_range(rng: ReadRange, open_file: Callable[[str], Any], spec: InputSpec) -> Iterator[Document | DeadLetter]:
    """Every record of a range, as a document or a dead letter."""
    if rng.format == "parquet":
        yield from iter_parquet(rng, open_file, spec)
        return
    parse = {"jsonl": parse_jsonl, "tfrecord": parse_tfrecord, "text": parse_text}[rng.format]
    for item in iter_records(rng, open_file):
        if isinstance(item, DeadLetter):
            yield item
        else:
            yield parse(rng.path, item[0], item[1], spec)


def open_for(rng: ReadRange) -> Callable[[str], Any]:
    """How to open the file of `rng`: fetching the range and a little more (its last line) when it is part of a file."""
    if rng.end is None:
        return open_raw
    return lambda path: open_raw(path, rng.size + _RANGE_SLACK)


SPREAD = "spread"


class ReadDocuments(beam.DoFn):
    """A `ReadRange` in; `TextBatch`es out (about 1 MB of text each, for the tokenizer); dead letters on "dead".

    A file read whole (compressed, text, TFRecord) that is bigger than
    `spread_bytes` sends its batches to the "spread" output instead, for a
    shuffle to deal them to every worker: decompressing is one thread's work,
    tokenizing 14 GB on that same thread would be the whole build's critical
    path. Ranges of split files are already spread; their batches stay on
    the main output, fused with the tokenizer.
    """

    def __init__(self, spec: InputSpec, batch_bytes: int = 1 << 20, progress_dir: str | None = None, spread_bytes: int | None = None):
        self._spec = spec
        self._batch_bytes = batch_bytes
        self._progress_dir = progress_dir
        self._spread_bytes = spread_bytes

    def setup(self):
        self._progress = ProgressFile(self._progress_dir)

    def process(self, rng: ReadRange):
        spread = self._spread_bytes is not None and rng.end is None and rng.size > self._spread_bytes
        out = (lambda batch: beam.pvalue.TaggedOutput(SPREAD, batch)) if spread else (lambda batch: batch)
        counts: collections.Counter[str] = collections.Counter()
        batch: list[Document] = []
        size = 0
        for item in read_range(rng, open_for(rng), self._spec):
            counts["records_read"] += 1
            if isinstance(item, DeadLetter):
                counts[f"dropped/{item.reason}"] += 1
                yield beam.pvalue.TaggedOutput("dead", item)
                continue
            batch.append(item)
            size += len(item.text)
            if size >= self._batch_bytes:
                yield out(TextBatch(batch))
                batch, size = [], 0
        if batch:
            yield out(TextBatch(batch))
        yield from emit_counters(counts)
        self._progress.add(input_bytes=rng.size)

    def teardown(self):
        if getattr(self, "_progress", None):
            self._progress.flush()
