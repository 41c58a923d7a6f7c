"""`tokenmill show`: examples of a published version decoded with the build's own tokenizer.

`decode_example` turns one stored example into a plain dict per objective
(what `--json` prints); `render` lays that dict out for a person, in colour
on a terminal. Every text comes with its pieces, which map back to the stored
ids one to one, so a script can check what it reads.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Mapping, TextIO

import numpy as np

from pipelines.inspect.measure import BERT
from pipelines.inspect.shards import read_rows, shard_entries, split_index
from pipelines.inspect.tokens import Tokens
from readers.manifest import Corpus
from transforms.vocab import CLS, MASK, SEP, WORD_START

LABELS = {
    "mlm_nsp": {0: "IsNext: B follows A in its document", 1: "NotNext: B is a random sentence from another document"},
    "mlm_sop": {0: "in order: B follows A", 1: "swapped: B came before A in the document"},
}


def decode_example(manifest: Mapping[str, Any], tokens: Tokens, example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """One example (1-D arrays by feature name) as a dict of decoded parts, by the manifest's objective."""
    objective = manifest["objective"]["name"]
    params = manifest["objective"]["params"]
    if objective == "clm":
        return _clm(tokens, example)
    if objective in BERT:
        return _bert(objective, tokens, example)
    if objective == "prefix_lm":
        if "input_ids" in example:
            return _decoder_prefix(tokens, example)
        return _prefix(tokens, example["inputs"], example["targets"], lead=False)
    if objective == "span_corruption":
        return _spans(tokens, example["inputs"], example["targets"], lead=False)
    if objective == "ul2":
        index = int(example["denoiser"][0])
        denoiser = dict(params["denoisers"][index], index=index)
        lead = bool(params["mode_tokens"])
        if denoiser["prefix_lm"]:
            decoded = _prefix(tokens, example["inputs"], example["targets"], lead)
        else:
            decoded = _spans(tokens, example["inputs"], example["targets"], lead)
        return {"denoiser": denoiser, **decoded}
    raise ValueError(f"show does not know the objective {objective!r}")


def _clm(tokens: Tokens, example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The row's pieces in order. A piece after one that ends with eos starts a document; the first piece of a
    row may instead continue a document cut at the end of another row (positions restart at 0 either way)."""
    ids, segments, positions = (np.asarray(example[k]) for k in ("input_ids", "segment_ids", "positions"))
    parts = []
    for segment in np.unique(segments[segments > 0]).tolist():
        columns = np.flatnonzero(segments == segment)
        piece = ids[columns]
        parts.append(
            {
                "segment": segment,
                "columns": [int(columns[0]), int(columns[-1])],
                "positions": [int(positions[columns[0]]), int(positions[columns[-1]])],
                "starts_document": True if parts and parts[-1]["ends_document"] else None,
                "ends_document": bool(piece[-1] == tokens.eos),
                **tokens.describe(piece),
            }
        )
    real = int(np.count_nonzero(segments))
    return {"parts": parts, "real_tokens": real, "padding": int(ids.size - real)}


def _bert(objective: str, tokens: Tokens, example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Segments A (and B) with the masks undone, each prediction with its original token and what replaced it."""
    ids = np.asarray(example["input_ids"])
    real = np.asarray(example["input_mask"]) > 0
    original = ids.copy()
    predictions = []
    if "masked_lm_positions" in example:
        used = np.asarray(example["masked_lm_weights"]) > 0
        where = np.asarray(example["masked_lm_positions"])[used]
        truth = np.asarray(example["masked_lm_ids"])[used]
        original[where] = truth
        shown = ids[where]
        kind = np.where(shown == tokens.specials[MASK], "mask", np.where(shown == truth, "kept", "random"))
        predictions = [
            {"position": int(p), "original": o, "shown": s, "kind": str(k)}
            for p, o, s, k in zip(where.tolist(), tokens.pieces(truth), tokens.pieces(shown), kind.tolist())
        ]
    segment = np.asarray(example["segment_ids"])
    framing = np.isin(original, [tokens.specials[CLS], tokens.specials[SEP]])
    columns = np.flatnonzero(real)
    # A runs from after [CLS] to the last [SEP] of segment 0; inside it (mlm) a [SEP] marks where a document ends.
    a_end = int(np.flatnonzero(real & (segment == 0) & (original == tokens.specials[SEP]))[-1])
    decoded: dict[str, Any] = {
        "segments": {"A": {"columns": [1, a_end - 1], **tokens.describe(original[1:a_end])}},
        "input": tokens.describe(ids[columns]),
        "predictions": predictions,
        "real_tokens": int(columns.size),
        "padding": int(ids.size - columns.size),
    }
    if "next_sentence_labels" in example:
        b = np.flatnonzero(real & (segment == 1) & ~framing)
        decoded["segments"]["B"] = {"columns": [int(b[0]), int(b[-1])], **tokens.describe(original[b])}
        label = int(example["next_sentence_labels"][0])
        decoded["label"] = {"value": label, "meaning": LABELS[objective][label]}
    return decoded


def _body(tokens: Tokens, row: np.ndarray, lead: bool) -> tuple[np.ndarray, str | None]:
    """A T5 feature row without its padding and final eos, and without the mode token in front when `lead`."""
    row = np.asarray(row)
    body = row[: int(np.count_nonzero(row != tokens.pad)) - 1]
    if lead:
        return body[1:], tokens.names[int(body[0])]
    return body, None


def _spans(tokens: Tokens, inputs: np.ndarray, targets: np.ndarray, lead: bool) -> dict[str, Any]:
    """Inputs with their sentinels, the span each sentinel hides (from targets) and the source run put back together."""
    body, mode = _body(tokens, inputs, lead)
    target, _ = _body(tokens, targets, False)
    starts = np.flatnonzero(np.isin(target, tokens.sentinels))
    hidden = {int(target[s]): target[s + 1 : e] for s, e in zip(starts.tolist(), starts[1:].tolist() + [target.size])}
    runs, kept_from = [], 0
    for at in np.flatnonzero(np.isin(body, tokens.sentinels)).tolist():
        runs += [body[kept_from:at], hidden[int(body[at])]]
        kept_from = at + 1
    source = np.concatenate(runs + [body[kept_from:]])
    spans = [{"sentinel": tokens.names[s], **tokens.describe(span)} for s, span in hidden.items()]
    decoded = {
        "inputs": tokens.describe(body),
        "targets": tokens.describe(target),
        "spans": spans,
        "source": tokens.describe(source),
        "noise_tokens": int(sum(len(s) for s in hidden.values())),
    }
    return decoded if mode is None else {"mode_token": mode, **decoded}


def _prefix(tokens: Tokens, inputs: np.ndarray, targets: np.ndarray, lead: bool) -> dict[str, Any]:
    """Encoder-decoder prefix LM (and UL2's S-denoiser): inputs hold the prefix, targets the rest."""
    prefix, mode = _body(tokens, inputs, lead)
    target, _ = _body(tokens, targets, False)
    decoded = {"prefix": tokens.describe(prefix), "target": tokens.describe(target), "source": tokens.describe(np.concatenate([prefix, target]))}
    return decoded if mode is None else {"mode_token": mode, **decoded}


def _decoder_prefix(tokens: Tokens, example: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Decoder-only layout: one row, a run of the eos-ended document stream; the loss on everything after `prefix_length`."""
    ids = np.asarray(example["input_ids"])
    body = ids[ids != tokens.pad]
    split = int(example["prefix_length"][0])
    return {
        "prefix": tokens.describe(body[:split]),
        "target": tokens.describe(body[split:]),
        "source": tokens.describe(body),
        "loss_tokens": int(np.count_nonzero(example["loss_mask"])),
    }


# Terminal layout.

STYLES = {"head": "1", "dim": "2", "special": "36", "mask": "1;31", "random": "1;33", "kept": "1;34", "hidden": "32", "mode": "1;35"}


class Painter:
    def __init__(self, colour: bool):
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m" if self.colour and text else text


def _join_pieces(pieces: list[str], paint: Painter, marks: Mapping[int, str] | None = None, spacing: list[str] | None = None) -> str:
    """Pieces as text, word starts as spaces (of `spacing`'s pieces when given); `marks` replaces the piece at an index with a marked-up string."""
    out = []
    for i, piece in enumerate(pieces):
        space = " " if (spacing or pieces)[i].startswith(WORD_START) and out else ""
        out.append(space + (marks[i] if marks and i in marks else piece.lstrip(WORD_START)))
    return "".join(out)


def render(decoded: Mapping[str, Any], manifest: Mapping[str, Any], paint: Painter) -> str:
    """A decoded example as lines of text for a person."""
    objective = manifest["objective"]["name"]
    where = f"{decoded['split']} example {decoded['index']} (shard {decoded['shard']}, row {decoded['row']})"
    lines = [paint(f"── {objective} · {where}", "head")]
    if objective == "clm":
        for part in decoded["parts"]:
            start = {True: "document start", None: "start unknown (may continue from another row)"}[part["starts_document"]]
            end = "document end" if part["ends_document"] else "continues in another row"
            lines.append(paint(f"piece {part['segment']}: positions {part['positions'][0]}..{part['positions'][1]}, columns {part['columns'][0]}..{part['columns'][1]}; {start}; {end}", "dim"))
            lines.append("  " + part["text"])
        lines.append(paint(f"{decoded['real_tokens']} tokens, {decoded['padding']} padding", "dim"))
    elif objective in BERT:
        marks = {}
        for p in decoded["predictions"]:
            shown = "[MASK]" if p["kind"] == "mask" else p["shown"].lstrip(WORD_START)
            marks[p["position"]] = paint(f"{shown}→{p['original'].lstrip(WORD_START)}" if p["kind"] != "kept" else f"{shown}(kept)", p["kind"])
        counts = {k: sum(p["kind"] == k for p in decoded["predictions"]) for k in ("mask", "random", "kept")}
        lines.append(paint("input, predictions marked shown→original:", "dim"))
        originals = list(decoded["input"]["tokens"])
        for p in decoded["predictions"]:
            originals[p["position"]] = p["original"]
        lines.append("  " + _join_pieces(decoded["input"]["tokens"], paint, marks, originals))
        for name, segment in decoded["segments"].items():
            lines.append(paint(f"segment {name} (columns {segment['columns'][0]}..{segment['columns'][1]}), masks undone:", "dim"))
            lines.append("  " + segment["text"])
        if manifest["objective"]["params"]["masking"] == "none":
            masks = "unmasked (--masking none: the trainer masks on the fly)"
        else:
            masks = f"{len(decoded['predictions'])} predictions: {counts['mask']} [MASK], {counts['random']} random, {counts['kept']} kept"
        lines.append(paint(f"{masks}; {decoded['real_tokens']} tokens, {decoded['padding']} padding", "dim"))
        if "label" in decoded:
            lines.append(f"label {decoded['label']['value']}: {decoded['label']['meaning']}")
    else:
        if "denoiser" in decoded:
            d = decoded["denoiser"]
            kind = "prefix LM" if d["prefix_lm"] else f"mean span {d['mean_span']:g}, density {d['density']:g}"
            lines.append(f"denoiser {d['index']}: {d['name']} ({kind}), mode token " + paint(decoded.get("mode_token") or "none", "mode"))
        if "spans" in decoded:
            lines.append(paint("inputs, each sentinel with the span it hides:", "dim"))
            lines.append("  " + _sentinels_marked(decoded["inputs"]["tokens"], decoded["spans"], paint))
            lines.append(paint(f"{len(decoded['spans'])} spans, {decoded['noise_tokens']} noise tokens", "dim"))
        else:
            lines.append(paint("prefix | target:", "dim"))
            lines.append("  " + decoded["prefix"]["text"] + paint(" | ", "mode") + paint(decoded["target"]["text"], "hidden"))
    return "\n".join(lines)


def _sentinels_marked(pieces: list[str], spans: list[Mapping[str, Any]], paint: Painter) -> str:
    """Inputs with `<extra_id_k>⟦hidden text⟧` at each sentinel, spaced as the hidden span's first piece."""
    hidden = {s["sentinel"]: s for s in spans}
    marks = {i: paint(p, "special") + paint(f"⟦{hidden[p]['text']}⟧", "hidden") for i, p in enumerate(pieces) if p in hidden}
    spacing = [hidden[p]["tokens"][0] if p in hidden and hidden[p]["tokens"] else p for p in pieces]
    return _join_pieces(pieces, paint, marks, spacing)


def show(
    path: str,
    split: str = "train",
    count: int = 1,
    index: int = 0,
    shard: int | None = None,
    fmt: str = "parquet",
    tokenizer: str | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
    colour: bool | None = None,
) -> None:
    """Print `count` examples from `index` on (inside `shard` when given), decoded."""
    out = out or sys.stdout
    corpus = Corpus(path)
    tokens = Tokens.for_manifest(corpus.manifest, tokenizer, corpus.root)
    first = index if shard is None else split_index(corpus, split, fmt, shard, index)
    total = sum(entry["examples"] for entry in shard_entries(corpus, split, fmt))
    positions = np.arange(first, min(first + count, total))
    if not positions.size:
        raise IndexError(f"split {split!r} has {total} examples; nothing at --index {first}")
    rows = read_rows(corpus, split, fmt, positions)
    paint = Painter(out.isatty() if colour is None else colour)
    for i, position in enumerate(positions.tolist()):
        example = {name: values[i] for name, values in rows.features.items()}
        decoded = {"split": split, "index": position, "shard": int(rows.shard[i]), "row": int(rows.row[i])}
        decoded.update(decode_example(corpus.manifest, tokens, example))
        if as_json:
            out.write(json.dumps(decoded, ensure_ascii=False) + "\n")
        else:
            out.write(render(decoded, corpus.manifest, paint) + "\n\n")
